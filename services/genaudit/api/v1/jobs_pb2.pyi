import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class JobType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_TYPE_UNSPECIFIED: _ClassVar[JobType]
    JOB_TYPE_FEATURE_EXTRACTION: _ClassVar[JobType]
    JOB_TYPE_METRICS: _ClassVar[JobType]
    JOB_TYPE_SPECTRUM: _ClassVar[JobType]
    JOB_TYPE_DETECT: _ClassVar[JobType]
    JOB_TYPE_TRAIN_DETECTOR: _ClassVar[JobType]
    JOB_TYPE_UNIT_STATS: _ClassVar[JobType]
    JOB_TYPE_CORRECT: _ClassVar[JobType]
    JOB_TYPE_COVERAGE: _ClassVar[JobType]
    JOB_TYPE_TRAIN_SINGLE_IMAGE: _ClassVar[JobType]
    JOB_TYPE_SINGLE_IMAGE_AUDIT: _ClassVar[JobType]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_TYPE_UNSPECIFIED: JobType
JOB_TYPE_FEATURE_EXTRACTION: JobType
JOB_TYPE_METRICS: JobType
JOB_TYPE_SPECTRUM: JobType
JOB_TYPE_DETECT: JobType
JOB_TYPE_TRAIN_DETECTOR: JobType
JOB_TYPE_UNIT_STATS: JobType
JOB_TYPE_CORRECT: JobType
JOB_TYPE_COVERAGE: JobType
JOB_TYPE_TRAIN_SINGLE_IMAGE: JobType
JOB_TYPE_SINGLE_IMAGE_AUDIT: JobType

class FeatureExtractionSpec(_message.Message):
    __slots__ = ("dataset_id", "feature_space", "batch_size")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SPACE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    feature_space: str
    batch_size: int
    def __init__(self, dataset_id: _Optional[str] = ..., feature_space: _Optional[str] = ..., batch_size: _Optional[int] = ...) -> None: ...

class MetricsSpec(_message.Message):
    __slots__ = ("real_dataset_id", "generated_dataset_ids", "feature_space", "k", "prdc_k", "batch_size", "kid_subsets", "kid_subset_size")
    REAL_DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATED_DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SPACE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PRDC_K_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    KID_SUBSETS_FIELD_NUMBER: _ClassVar[int]
    KID_SUBSET_SIZE_FIELD_NUMBER: _ClassVar[int]
    real_dataset_id: str
    generated_dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    feature_space: str
    k: int
    prdc_k: int
    batch_size: int
    kid_subsets: int
    kid_subset_size: int
    def __init__(self, real_dataset_id: _Optional[str] = ..., generated_dataset_ids: _Optional[_Iterable[str]] = ..., feature_space: _Optional[str] = ..., k: _Optional[int] = ..., prdc_k: _Optional[int] = ..., batch_size: _Optional[int] = ..., kid_subsets: _Optional[int] = ..., kid_subset_size: _Optional[int] = ...) -> None: ...

class SpectrumSpec(_message.Message):
    __slots__ = ("real_dataset_id", "generated_dataset_ids", "size", "max_images")
    REAL_DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATED_DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    real_dataset_id: str
    generated_dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    size: int
    max_images: int
    def __init__(self, real_dataset_id: _Optional[str] = ..., generated_dataset_ids: _Optional[_Iterable[str]] = ..., size: _Optional[int] = ..., max_images: _Optional[int] = ...) -> None: ...

class DetectSpec(_message.Message):
    __slots__ = ("dataset_ids", "real_dataset_ids", "model", "batch_size")
    DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    REAL_DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    real_dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    model: str
    batch_size: int
    def __init__(self, dataset_ids: _Optional[_Iterable[str]] = ..., real_dataset_ids: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., batch_size: _Optional[int] = ...) -> None: ...

class TrainDetectorSpec(_message.Message):
    __slots__ = ("real_dataset_ids", "generated_dataset_ids", "arch", "val_fraction", "max_epochs", "blur_prob", "jpeg_prob", "crop", "target_fpr", "seed", "batch_size", "simulated_fake_prob", "surprise")
    REAL_DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    VAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    MAX_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BLUR_PROB_FIELD_NUMBER: _ClassVar[int]
    JPEG_PROB_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    TARGET_FPR_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FAKE_PROB_FIELD_NUMBER: _ClassVar[int]
    SURPRISE_FIELD_NUMBER: _ClassVar[int]
    real_dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    generated_dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    arch: str
    val_fraction: float
    max_epochs: int
    blur_prob: float
    jpeg_prob: float
    crop: int
    target_fpr: float
    seed: int
    batch_size: int
    simulated_fake_prob: float
    surprise: bool
    def __init__(self, real_dataset_ids: _Optional[_Iterable[str]] = ..., generated_dataset_ids: _Optional[_Iterable[str]] = ..., arch: _Optional[str] = ..., val_fraction: _Optional[float] = ..., max_epochs: _Optional[int] = ..., blur_prob: _Optional[float] = ..., jpeg_prob: _Optional[float] = ..., crop: _Optional[int] = ..., target_fpr: _Optional[float] = ..., seed: _Optional[int] = ..., batch_size: _Optional[int] = ..., simulated_fake_prob: _Optional[float] = ..., surprise: _Optional[bool] = ...) -> None: ...

class UnitStatsSpec(_message.Message):
    __slots__ = ("generator", "arch", "sha256", "n_samples", "seed", "layers", "rate", "batch_size", "top_images")
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOP_IMAGES_FIELD_NUMBER: _ClassVar[int]
    generator: str
    arch: str
    sha256: str
    n_samples: int
    seed: int
    layers: _containers.RepeatedScalarFieldContainer[str]
    rate: float
    batch_size: int
    top_images: int
    def __init__(self, generator: _Optional[str] = ..., arch: _Optional[str] = ..., sha256: _Optional[str] = ..., n_samples: _Optional[int] = ..., seed: _Optional[int] = ..., layers: _Optional[_Iterable[str]] = ..., rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., top_images: _Optional[int] = ...) -> None: ...

class CorrectSpec(_message.Message):
    __slots__ = ("generator", "arch", "sha256", "method", "flaw_score", "real_dataset_id", "feature_space", "top_k", "alpha", "layers", "n_samples", "seed", "rate", "tolerance", "batch_size")
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    FLAW_SCORE_FIELD_NUMBER: _ClassVar[int]
    REAL_DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SPACE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    generator: str
    arch: str
    sha256: str
    method: str
    flaw_score: str
    real_dataset_id: str
    feature_space: str
    top_k: int
    alpha: float
    layers: _containers.RepeatedScalarFieldContainer[str]
    n_samples: int
    seed: int
    rate: float
    tolerance: float
    batch_size: int
    def __init__(self, generator: _Optional[str] = ..., arch: _Optional[str] = ..., sha256: _Optional[str] = ..., method: _Optional[str] = ..., flaw_score: _Optional[str] = ..., real_dataset_id: _Optional[str] = ..., feature_space: _Optional[str] = ..., top_k: _Optional[int] = ..., alpha: _Optional[float] = ..., layers: _Optional[_Iterable[str]] = ..., n_samples: _Optional[int] = ..., seed: _Optional[int] = ..., rate: _Optional[float] = ..., tolerance: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class CoverageSpec(_message.Message):
    __slots__ = ("real_dataset_id", "generated_dataset_ids", "feature_space", "clusters", "seed", "batch_size")
    REAL_DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATED_DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SPACE_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    real_dataset_id: str
    generated_dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    feature_space: str
    clusters: int
    seed: int
    batch_size: int
    def __init__(self, real_dataset_id: _Optional[str] = ..., generated_dataset_ids: _Optional[_Iterable[str]] = ..., feature_space: _Optional[str] = ..., clusters: _Optional[int] = ..., seed: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class TrainSingleImageSpec(_message.Message):
    __slots__ = ("dataset_id", "image", "arch", "scale", "max_side", "iterations", "seed")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    image: str
    arch: str
    scale: str
    max_side: int
    iterations: int
    seed: int
    def __init__(self, dataset_id: _Optional[str] = ..., image: _Optional[str] = ..., arch: _Optional[str] = ..., scale: _Optional[str] = ..., max_side: _Optional[int] = ..., iterations: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class SingleImageAuditSpec(_message.Message):
    __slots__ = ("generator", "arch", "sha256", "dataset_id", "image", "n_samples", "seed", "local_feature_space", "feature_space", "patch_size", "batch_size")
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FEATURE_SPACE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SPACE_FIELD_NUMBER: _ClassVar[int]
    PATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    generator: str
    arch: str
    sha256: str
    dataset_id: str
    image: str
    n_samples: int
    seed: int
    local_feature_space: str
    feature_space: str
    patch_size: int
    batch_size: int
    def __init__(self, generator: _Optional[str] = ..., arch: _Optional[str] = ..., sha256: _Optional[str] = ..., dataset_id: _Optional[str] = ..., image: _Optional[str] = ..., n_samples: _Optional[int] = ..., seed: _Optional[int] = ..., local_feature_space: _Optional[str] = ..., feature_space: _Optional[str] = ..., patch_size: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("feature_extraction", "metrics", "spectrum", "detect", "train_detector", "unit_stats", "correct", "coverage", "train_single_image", "single_image_audit")
    FEATURE_EXTRACTION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SPECTRUM_FIELD_NUMBER: _ClassVar[int]
    DETECT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_DETECTOR_FIELD_NUMBER: _ClassVar[int]
    UNIT_STATS_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SINGLE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SINGLE_IMAGE_AUDIT_FIELD_NUMBER: _ClassVar[int]
    feature_extraction: FeatureExtractionSpec
    metrics: MetricsSpec
    spectrum: SpectrumSpec
    detect: DetectSpec
    train_detector: TrainDetectorSpec
    unit_stats: UnitStatsSpec
    correct: CorrectSpec
    coverage: CoverageSpec
    train_single_image: TrainSingleImageSpec
    single_image_audit: SingleImageAuditSpec
    def __init__(self, feature_extraction: _Optional[_Union[FeatureExtractionSpec, _Mapping]] = ..., metrics: _Optional[_Union[MetricsSpec, _Mapping]] = ..., spectrum: _Optional[_Union[SpectrumSpec, _Mapping]] = ..., detect: _Optional[_Union[DetectSpec, _Mapping]] = ..., train_detector: _Optional[_Union[TrainDetectorSpec, _Mapping]] = ..., unit_stats: _Optional[_Union[UnitStatsSpec, _Mapping]] = ..., correct: _Optional[_Union[CorrectSpec, _Mapping]] = ..., coverage: _Optional[_Union[CoverageSpec, _Mapping]] = ..., train_single_image: _Optional[_Union[TrainSingleImageSpec, _Mapping]] = ..., single_image_audit: _Optional[_Union[SingleImageAuditSpec, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "job_type", "spec", "state", "progress", "message", "error", "artifact_names", "idempotency_key", "schedule_id", "attempts", "cancel_requested", "version", "create_time", "start_time", "finish_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_NAMES_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    job_type: JobType
    spec: JobSpec
    state: JobState
    progress: float
    message: str
    error: str
    artifact_names: _containers.RepeatedScalarFieldContainer[str]
    idempotency_key: str
    schedule_id: str
    attempts: int
    cancel_requested: bool
    version: int
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., job_type: _Optional[_Union[JobType, str]] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[float] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., artifact_names: _Optional[_Iterable[str]] = ..., idempotency_key: _Optional[str] = ..., schedule_id: _Optional[str] = ..., attempts: _Optional[int] = ..., cancel_requested: _Optional[bool] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("idempotency_key", "spec")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    spec: JobSpec
    def __init__(self, idempotency_key: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "created")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    created: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "states", "job_type")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[JobState]
    job_type: JobType
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ..., job_type: _Optional[_Union[JobType, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id", "name", "cron", "job_type", "spec", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    cron: str
    job_type: JobType
    spec: JobSpec
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., cron: _Optional[str] = ..., job_type: _Optional[_Union[JobType, str]] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("name", "cron", "spec")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    spec: JobSpec
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ...) -> None: ...

class CreateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("schedule_id",)
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    def __init__(self, schedule_id: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
