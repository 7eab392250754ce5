"""Process-wide runtime settings chosen deliberately: device, torch threads, env defaults."""

from __future__ import annotations

import os

import torch

__all__ = ["configure_environment", "pick_device", "set_torch_threads"]


def configure_environment() -> None:
    """Defaults for the embedded stack; any value already in the environment wins.

    Prefect's telemetry is off: it tries a DNS lookup and logs an error offline.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def pick_device(setting: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but no CUDA device is available")
    return torch.device(setting)


def set_torch_threads(n: int | None) -> None:
    """Set torch's intra-op threads (None keeps torch's default)."""
    if n is not None:
        torch.set_num_threads(n)
