"""Where torch work runs: one resolution of a device name for the metrics, extractors, generators and jobs."""

from __future__ import annotations

import torch

from genaudit.errors import FailedPrecondition, InvalidArgument

DeviceLike = str | torch.device


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; "cpu", "cuda", "cuda:N" or a torch.device otherwise.

    InvalidArgument for anything else; FailedPrecondition for cuda on a machine without it (asked for explicitly,
    so silently falling back to the CPU would hide a misconfigured worker)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgument(f"invalid device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise InvalidArgument(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FailedPrecondition(f"device {device!r} requested but CUDA is not available on this machine")
    return resolved
