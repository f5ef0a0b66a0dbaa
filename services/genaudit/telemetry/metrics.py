"""Prometheus metrics of gateway and workers (DESIGN.md §1).

Base units, bounded labels, never ids. Workers run prefork, so they use prometheus-client's
multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` before this module is imported (the worker CLI
does); gauges then declare how values of several processes combine.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Job durations range from a fraction of a second (tiny datasets) to hours (200k-image audits).
_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
# Screening is interactive: sub-second buckets.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

JOBS_SUBMITTED = Counter(
    "genaudit_jobs_submitted_total", "Jobs accepted by the gateway (idempotent replays not counted).",
    ["job_type"],
)
JOBS_FINISHED = Counter(
    "genaudit_jobs_finished_total", "Jobs that reached a terminal state.", ["job_type", "status"],
)
JOB_DURATION = Histogram(
    "genaudit_job_duration_seconds", "Wall time of a job stage on a worker.", ["job_type", "stage"],
    buckets=_DURATION_BUCKETS,
)
SCREEN_LATENCY = Histogram(
    "genaudit_screen_latency_seconds", "Latency of one Screen call, queueing and batching included.",
    buckets=_LATENCY_BUCKETS,
)
# Images per micro-batch: 1 when calls arrive alone, up to the batcher's max_batch under load.
SCREEN_BATCH_SIZE = Histogram(
    "genaudit_screen_batch_images", "Images scored together in one micro-batch of Screen calls.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
# A drift in the share labelled generated is what a screening team watches (new generator, broken client).
SCREEN_VERDICTS = Counter(
    "genaudit_screen_verdicts_total", "Screen calls answered with a verdict, by label at the operating threshold.",
    ["label"],
)
QUEUE_DEPTH = Gauge(
    "genaudit_queue_depth", "Messages waiting in a worker queue.", ["queue"], multiprocess_mode="max",
)
GRPC_HANDLED = Counter(
    "genaudit_grpc_server_handled_total", "RPCs completed by the server (gateway or detector model server).",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_LATENCY = Histogram(
    "genaudit_grpc_server_handling_seconds", "RPC handling time at the server (gateway or detector model server).",
    ["grpc_service", "grpc_method"],
    buckets=_LATENCY_BUCKETS,
)
IMAGES_PROCESSED = Counter(
    "genaudit_images_processed_total", "Images decoded by workers.", ["job_type", "outcome"],
)
# Detector model server (`genaudit detector-serve`). It runs one forward pass at a time, so the wait for the
# model is what grows first when it is saturated: add replicas (or a GPU) when that wait nears the forward time.
DETECTOR_FORWARD = Histogram(
    "genaudit_detector_forward_seconds", "One forward pass of the detector model server over decoded images.",
    buckets=_LATENCY_BUCKETS,
)
DETECTOR_FORWARD_WAIT = Histogram(
    "genaudit_detector_forward_wait_seconds", "Time a chunk of decoded images waited for the model to be free.",
    buckets=_LATENCY_BUCKETS,
)
DETECTOR_IMAGES = Counter(
    "genaudit_detector_images_total", "Images received by the detector model server: scored, or invalid "
    "(undecodable or refused by the model).", ["outcome"],
)
