"""All configuration in one place, read from ``GENAUDIT_*`` environment variables.

The embedded mode and the distributed mode differ only in these values: ``redis_url`` empty means an
in-process job store and dispatcher; ``s3_endpoint`` empty means the local-folder object store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    # --- infrastructure -------------------------------------------------------------------------
    redis_url: str = ""  # "" = embedded (in-process job store and worker)
    broker_url: str = ""  # defaults to redis_url
    s3_endpoint: str = ""  # host:port; "" = local folder store
    s3_public_endpoint: str = ""  # host:port clients use for presigned URLs; defaults to s3_endpoint
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "genaudit"
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    store_dir: Path = field(default_factory=lambda: Path.home() / ".genaudit" / "store")

    # --- gateway ----------------------------------------------------------------------------------
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50051
    metrics_port: int = 9100  # gateway /metrics; workers use worker_metrics_port
    worker_metrics_port: int = 9101
    detector_metrics_port: int = 9102  # /metrics of `genaudit detector-serve`
    api_keys_file: str = ""  # JSON: {"tenants": {"<tenant>": ["<sha256 hex of key>", ...]}}
    api_keys: str = ""  # inline alternative: "tenant:sha256hex,tenant2:sha256hex"
    max_message_bytes: int = 32 * 1024 * 1024
    shutdown_grace_s: float = 10.0
    presign_expiry_s: int = 3600

    # --- images -----------------------------------------------------------------------------------
    max_image_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 40_000_000  # ~6300x6300; decompression bombs are refused before decoding
    max_images_per_dataset: int = 1_000_000

    # --- screening --------------------------------------------------------------------------------
    screen_backend: str = ""  # host:port of a detector server (genaudit detector-serve); "" = none
    # The detector of `genaudit detector-serve` and, without a backend, of the embedded gateway:
    # "default" (the shipped detector) or the path of a detector card (<name>.json next to its weights).
    screen_model: str = "default"

    # --- workers ----------------------------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 64
    visibility_timeout_s: int = 6 * 3600  # longer than the longest task
    max_tasks_per_child: int = 50
    weights_dir: Path = field(default_factory=lambda: Path.home() / ".genaudit" / "weights")
    feature_cache: bool = True
    progress_interval_s: float = 0.25  # least time between two progress writes of a job (the last always lands)

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from ``GENAUDIT_<FIELD>`` environment variables over the defaults."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"GENAUDIT_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            elif isinstance(default, Path):
                values[f.name] = Path(raw).expanduser()
            else:
                values[f.name] = raw
        return cls(**values)

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url
