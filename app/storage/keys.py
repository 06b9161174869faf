"""Storage keys, and the caching and visibility each kind of key gets.

Keys are made by the service, never from a client's file name:
``originals/<job id>`` (private) and
``media/<job id>/<preset version>/<variant>.<ext>`` (public, immutable).
"""

from __future__ import annotations

import re

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")

PUBLIC_PREFIX = "media/"
PUBLIC_CACHE_CONTROL = "public, max-age=31536000, immutable"
PRIVATE_CACHE_CONTROL = "private, no-store"


def original_key(job_id: str) -> str:
    return f"originals/{job_id}"


def variant_key(job_id: str, preset_version: str, name: str, fmt: str) -> str:
    return f"media/{job_id}/{preset_version}/{name}.{fmt}"


def is_valid_key(key: str) -> bool:
    return bool(_KEY.match(key)) and ".." not in key


def check_key(key: str) -> str:
    """``key`` itself; ``ValueError`` when the service could not have made it."""
    if not is_valid_key(key):
        raise ValueError(f"Storage key {key!r} is not a valid key.")
    return key


def is_public(key: str) -> bool:
    """Variants are public; everything else (the originals) is private."""
    return key.startswith(PUBLIC_PREFIX)


def cache_control(key: str) -> str:
    """The ``Cache-Control`` an object is stored and served with."""
    return PUBLIC_CACHE_CONTROL if is_public(key) else PRIVATE_CACHE_CONTROL
