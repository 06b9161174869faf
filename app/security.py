"""Who is calling, and how much they may do.

Authentication resolves each API request to a *principal* (a string the host
recognises, such as a user or client id):

- ``IMAGE_PIPELINE_AUTH=none`` (the default): every caller is anonymous;
- ``IMAGE_PIPELINE_AUTH=api-key``: a key in ``X-API-Key`` or
  ``Authorization: Bearer``, checked against the SHA-256 digests in
  ``IMAGE_PIPELINE_API_KEYS`` (``principal:digest,...``; the keys themselves
  are never stored);
- a host callable, given to the extension, that maps the Flask request to a
  principal (for hosts with their own session authentication).

With ownership on, a job and its media belong to the principal that uploaded
them, and anyone else gets the same 404 as for a job that does not exist.

Quotas limit uploads per principal and per client address (a sliding window
kept in Redis when ``REDIS_URL`` is set, else in the process) and the jobs a
principal may have unfinished at once. A refused upload is answered before its
body is read, so nothing of it is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import Request
from limits import RateLimitItem, parse
from limits.errors import StorageError as LimitsStorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter

from app.errors import RateLimited, Unauthorized

log = logging.getLogger(__name__)

Authenticate = Callable[[Request], str | None]
"""A host's hook: the request's principal, or ``None`` to refuse it."""

AUTH_MODES = ("none", "api-key")
KEY_HEADER = "X-API-Key"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def parse_api_keys(value: str) -> dict[str, str]:
    """``principal:sha256hex,...`` as ``{digest: principal}``; ValueError if bad."""
    keys: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        principal, _, digest = entry.rpartition(":")
        if not principal or len(digest) != 64 or not _is_hex(digest):
            raise ValueError(
                f"IMAGE_PIPELINE_API_KEYS entry {principal or entry[:12]!r} must be "
                "principal:sha256-hex; make one with 'image-pipeline keys new NAME'."
            )
        keys[digest.lower()] = principal
    return keys


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


@dataclass
class Authenticator:
    mode: str
    api_keys: Mapping[str, str]
    hook: Authenticate | None = None

    def principal(self, request: Request) -> str | None:
        """The caller's principal; ``None`` when authentication is off.

        Raises :class:`Unauthorized` when it is on and the caller is unknown.
        """
        if self.hook is not None:
            principal = self.hook(request)
            if not principal:
                raise Unauthorized("Sign in to use the image pipeline.")
            return principal
        if self.mode == "none":
            return None
        return self._from_key(request)

    def _from_key(self, request: Request) -> str:
        key = request.headers.get(KEY_HEADER, "")
        bearer = request.headers.get("Authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        if not key:
            raise Unauthorized(
                f"An API key is required: send it in {KEY_HEADER} or as a Bearer token."
            )
        digest = hash_key(key)
        for known, principal in self.api_keys.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise Unauthorized("The API key is not valid.")


class UploadQuota:
    """Upload rate limits per principal and per client address.

    A limit of ``"0"`` (or empty) switches that limit off. If the limit store
    is unreachable, uploads are allowed and a warning is logged: a Redis
    outage must not stop uploads.
    """

    def __init__(self, per_principal: str, per_address: str, redis_url: str) -> None:
        self.per_principal = _limit(per_principal)
        self.per_address = _limit(per_address)
        self.limiter = SlidingWindowCounterRateLimiter(_storage(redis_url))

    def check(self, principal: str | None, address: str | None) -> None:
        """Count one upload; raise :class:`RateLimited` if a limit is reached."""
        checks = [
            (self.per_principal, "principal", principal),
            (self.per_address, "address", address),
        ]
        for item, kind, who in checks:
            if item is not None and who:
                self._hit(item, kind, who)

    def _hit(self, item: RateLimitItem, kind: str, who: str) -> None:
        try:
            allowed = self.limiter.hit(item, "upload", kind, who)
            if allowed:
                return
            reset = self.limiter.get_window_stats(item, "upload", kind, who).reset_time
        except LimitsStorageError:
            log.warning("upload quota store unavailable; allowing the upload")
            return
        retry_after = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"Too many uploads: the limit is {item.amount} per "
            f"{_window(item)}. Try again in {retry_after} s.",
            retry_after=retry_after,
        )


def _limit(value: str) -> RateLimitItem | None:
    value = value.strip()
    if value in ("", "0"):
        return None
    return parse(value)


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def _storage(redis_url: str) -> Storage:
    if not redis_url:
        return MemoryStorage()
    return RedisStorage(
        redis_url,
        wrap_exceptions=True,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )
