"""Settings of a remote store's client, kept apart so reading them is cheap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StorageOptions:
    """How long and how often a remote store is tried before a call fails."""

    connect_timeout: float = 3.0
    read_timeout: float = 20.0
    max_attempts: int = 3
    """Tries per call, the first included, with jittered backoff between."""
    addressing_style: str = "auto"
    """``path``, ``virtual``, or ``auto``: path-style when a custom endpoint
    is set (MinIO, R2, a local test server), boto3's choice otherwise."""
