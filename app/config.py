"""Settings: defaults in code, then the environment, then validation.

Every setting is one field of :class:`Settings`, documented where it is
defined, with the environment variable that sets it. With no variable set the
service runs embedded: SQLite, local disk and a broker kept in files, all
under ``./image-pipeline-data``. :meth:`Settings.problems` lists every bad
setting at once so start-up can report them together.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.imaging.types import Limits
from app.presets import Preset, PresetError, build_presets
from app.storage.options import StorageOptions

DATA_DIR_NAME = "image-pipeline-data"
EMBEDDED_BROKER_SCHEME = "sqla+sqlite"
MASK = "***"
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(ValueError):
    """One or more settings are invalid; the message lists all of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


def _setting(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    data_dir: str = _setting(
        "IMAGE_PIPELINE_DATA_DIR",
        "",
        "Where the embedded defaults keep the database, broker files and media "
        "(default ./image-pipeline-data).",
    )
    database_url: str = _setting(
        "DATABASE_URL",
        "",
        "SQLAlchemy URL; postgresql:// URLs use psycopg 3. Default: SQLite in the "
        "data directory.",
    )
    redis_url: str = _setting(
        "REDIS_URL", "", "Redis for the broker (and quotas); unset in embedded mode."
    )
    broker_url: str = _setting(
        "BROKER_URL",
        "",
        "Celery broker (redis:// or amqp://). Default: REDIS_URL, else an embedded "
        "broker in a SQLite file of the data directory.",
    )
    storage_url: str = _setting(
        "STORAGE_URL",
        "",
        "file:///path for local disk, or s3://bucket/prefix for S3, R2 or MinIO "
        "(endpoint, region and credentials from the usual AWS_* variables). "
        "Default: the data directory's media/.",
    )
    storage_connect_timeout: float = _setting(
        "IMAGE_PIPELINE_STORAGE_CONNECT_TIMEOUT",
        3.0,
        "Longest wait to connect to S3-compatible storage, seconds.",
    )
    storage_read_timeout: float = _setting(
        "IMAGE_PIPELINE_STORAGE_READ_TIMEOUT",
        20.0,
        "Longest wait for an S3-compatible storage answer, seconds.",
    )
    storage_max_attempts: int = _setting(
        "IMAGE_PIPELINE_STORAGE_MAX_ATTEMPTS",
        3,
        "Tries per storage call (the first included) before the job is retried later.",
    )
    s3_addressing_style: str = _setting(
        "IMAGE_PIPELINE_S3_ADDRESSING_STYLE",
        "auto",
        "path, virtual or auto (path-style when AWS_ENDPOINT_URL(_S3) is set).",
    )
    public_media_url: str = _setting(
        "PUBLIC_MEDIA_URL",
        "/image-pipeline/files",
        "Base of variant URLs. The default is served by the API itself.",
    )
    max_upload_bytes: int = _setting(
        "IMAGE_PIPELINE_MAX_BYTES", 25 * 1024 * 1024, "Largest accepted upload."
    )
    max_pixels: int = _setting(
        "IMAGE_PIPELINE_MAX_PIXELS",
        50_000_000,
        "Largest accepted image, in pixels over all frames; checked before decoding.",
    )
    min_dimension: int = _setting(
        "IMAGE_PIPELINE_MIN_DIMENSION", 1, "Smallest accepted width or height."
    )
    max_frames: int = _setting(
        "IMAGE_PIPELINE_MAX_FRAMES", 100, "Most frames an animation may have."
    )
    presets_json: str = _setting(
        "IMAGE_PIPELINE_PRESETS",
        "",
        'JSON object of presets by source type, e.g. {"cover": {"fit": "width", '
        '"variants": {"md": 1200}}}; merged over the defaults.',
    )
    max_attempts: int = _setting(
        "IMAGE_PIPELINE_MAX_ATTEMPTS",
        5,
        "Claims a job gets before it ends FAILED; stored on each job.",
    )
    soft_time_limit: float = _setting(
        "IMAGE_PIPELINE_SOFT_TIME_LIMIT", 105.0, "Celery soft time limit, seconds."
    )
    hard_time_limit: float = _setting(
        "IMAGE_PIPELINE_HARD_TIME_LIMIT", 120.0, "Celery hard time limit, seconds."
    )
    lease_seconds: float = _setting(
        "IMAGE_PIPELINE_LEASE",
        180.0,
        "How long a worker's claim on a job lasts unless renewed.",
    )
    lease_renew_seconds: float = _setting(
        "IMAGE_PIPELINE_LEASE_RENEW", 30.0, "How often a running job renews its lease."
    )
    reaper_interval: float = _setting(
        "IMAGE_PIPELINE_REAPER_INTERVAL",
        30.0,
        "How often beat re-dispatches stale jobs, seconds.",
    )
    pending_grace: float = _setting(
        "IMAGE_PIPELINE_PENDING_GRACE",
        60.0,
        "Age after which a PENDING job that no worker took is dispatched again.",
    )
    visibility_timeout: float = _setting(
        "IMAGE_PIPELINE_VISIBILITY_TIMEOUT",
        900.0,
        "Redis redelivers a task not acknowledged within this many seconds.",
    )
    retry_backoff_base: float = _setting(
        "IMAGE_PIPELINE_RETRY_BACKOFF",
        2.0,
        "First retry delay after a transient error; doubles per attempt, jittered.",
    )
    retry_backoff_max: float = _setting(
        "IMAGE_PIPELINE_RETRY_BACKOFF_MAX", 60.0, "Longest retry delay, seconds."
    )
    collect_interval: float = _setting(
        "IMAGE_PIPELINE_COLLECT_INTERVAL",
        3600.0,
        "How often beat removes stored objects that no job needs, seconds.",
    )
    orphan_grace: float = _setting(
        "IMAGE_PIPELINE_ORPHAN_GRACE",
        3600.0,
        "Age below which a stored object is never collected: an upload or a task "
        "may be about to record it. Must exceed the hard time limit.",
    )
    original_retention: float = _setting(
        "IMAGE_PIPELINE_ORIGINAL_RETENTION",
        0.0,
        "Seconds an original is kept after its job ended; 0 keeps it forever. "
        "Re-rendering media for a changed preset needs the original.",
    )
    dispatch_timeout: float = _setting(
        "IMAGE_PIPELINE_DISPATCH_TIMEOUT",
        1.0,
        "Longest an upload waits for the broker before leaving the job to the reaper.",
    )
    sinks_json: str = _setting(
        "IMAGE_PIPELINE_SINKS",
        "",
        "JSON object of delivery sinks by source type ('*' for all); default: "
        "the avatar URL column users.avatar_url.",
    )
    keep_latest_json: str = _setting(
        "IMAGE_PIPELINE_KEEP_LATEST",
        "",
        'JSON object of source type to N, e.g. {"avatar": 1}: older media of '
        "an owner beyond the newest N are deleted.",
    )
    dedupe_source_types: str = _setting(
        "IMAGE_PIPELINE_DEDUPE",
        "",
        "Comma-separated source types where an owner's identical upload returns "
        "the existing job.",
    )
    delivery_interval: float = _setting(
        "IMAGE_PIPELINE_DELIVERY_INTERVAL",
        5.0,
        "How often beat delivers completed jobs to their sinks, seconds.",
    )
    delivery_max_attempts: int = _setting(
        "IMAGE_PIPELINE_DELIVERY_MAX_ATTEMPTS",
        8,
        "Tries a delivery gets before it is marked FAILED.",
    )
    delivery_backoff: float = _setting(
        "IMAGE_PIPELINE_DELIVERY_BACKOFF",
        5.0,
        "First delay after a failed delivery; doubles per attempt, jittered.",
    )
    webhook_timeout: float = _setting(
        "IMAGE_PIPELINE_WEBHOOK_TIMEOUT", 5.0, "Longest a webhook call may take."
    )
    auth: str = _setting(
        "IMAGE_PIPELINE_AUTH",
        "none",
        "'none' (anyone may call the API) or 'api-key' (X-API-Key or Bearer).",
    )
    api_keys: str = _setting(
        "IMAGE_PIPELINE_API_KEYS",
        "",
        "principal:sha256-of-key pairs, comma-separated; see 'image-pipeline "
        "keys new'.",
    )
    ownership: bool = _setting(
        "IMAGE_PIPELINE_OWNERSHIP",
        True,
        "With authentication on, only the uploading principal sees a job or media.",
    )
    upload_rate: str = _setting(
        "IMAGE_PIPELINE_UPLOAD_RATE",
        "60/minute",
        "Uploads allowed per principal, e.g. '60/minute'; '0' turns it off.",
    )
    upload_rate_per_address: str = _setting(
        "IMAGE_PIPELINE_UPLOAD_RATE_PER_ADDRESS",
        "60/minute",
        "Uploads allowed per client address; '0' turns it off.",
    )
    max_active_jobs: int = _setting(
        "IMAGE_PIPELINE_MAX_ACTIVE_JOBS",
        100,
        "Unfinished jobs a principal may have at once; 0 turns the cap off.",
    )
    trusted_proxies: int = _setting(
        "IMAGE_PIPELINE_TRUSTED_PROXIES",
        0,
        "Reverse proxies in front of the API whose X-Forwarded-For is believed.",
    )
    worker_concurrency: int = _setting(
        "IMAGE_PIPELINE_WORKER_CONCURRENCY",
        0,
        "Worker processes per worker; 0 means one per CPU.",
    )
    heavy_bytes: int = _setting(
        "IMAGE_PIPELINE_HEAVY_BYTES",
        8 * 1024 * 1024,
        "Originals larger than this, and animations, go to the heavy queue "
        "(image-pipeline-heavy); 0 sends every job to the default queue.",
    )
    log_format: str = _setting(
        "IMAGE_PIPELINE_LOG_FORMAT",
        "text",
        "text for human-readable lines, json for one JSON object per line.",
    )
    ready_timeout: float = _setting(
        "IMAGE_PIPELINE_READY_TIMEOUT",
        2.0,
        "Longest /readyz waits for each of the database, broker and storage.",
    )
    worker_max_memory_kb: int = _setting(
        "IMAGE_PIPELINE_WORKER_MAX_MEMORY_KB",
        1_500_000,
        "A worker child is replaced after a task leaves it above this resident size.",
    )
    request_timeout: float = _setting(
        "IMAGE_PIPELINE_REQUEST_TIMEOUT",
        30.0,
        "Longest a client may take to send a request body, seconds; a slower one "
        "(a slow-loris upload) is cut off. Under waitress (serve) it is the idle "
        "timeout of a connection. 0 disables.",
    )
    worker_max_address_space_mb: int = _setting(
        "IMAGE_PIPELINE_WORKER_MAX_ADDRESS_SPACE_MB",
        3072,
        "Address-space limit (RLIMIT_AS) of each worker child, in MiB; 0 disables. "
        "A decoder that allocates past it fails its job (too_large_to_decode), not "
        "the worker. A 50 MP RGBA image peaks near 650 MiB; the rest is headroom "
        "for the interpreter, libraries and thread arenas.",
    )
    worker_max_cpu_seconds: int = _setting(
        "IMAGE_PIPELINE_WORKER_MAX_CPU_SECONDS",
        300,
        "CPU seconds (RLIMIT_CPU) one task may use in a worker child, all threads "
        "counted; 0 disables. A child over it is killed by SIGXCPU and replaced; "
        "its job is retried by the reaper like any crash.",
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(type(f.default), raw)
            except ValueError:
                problems.append(
                    f"{f.metadata['env']}={raw!r} is not a valid "
                    f"{type(f.default).__name__}."
                )
        if problems:
            raise ConfigError(problems)
        values.update(overrides)
        return cls(**values).resolved()

    def resolved(self) -> Settings:
        """Fill the embedded defaults that depend on the data directory."""
        data_dir = Path(self.data_dir or Path.cwd() / DATA_DIR_NAME).resolve()
        values: dict[str, Any] = {"data_dir": str(data_dir)}
        if not self.database_url:
            values["database_url"] = f"sqlite:///{data_dir / 'pipeline.db'}"
        if not self.broker_url:
            values["broker_url"] = (
                self.redis_url
                or f"{EMBEDDED_BROKER_SCHEME}:///{data_dir / 'broker.db'}"
            )
        if not self.storage_url:
            values["storage_url"] = (data_dir / "media").as_uri()
        return replace(self, **values)

    def storage_options(self) -> StorageOptions:
        return StorageOptions(
            connect_timeout=self.storage_connect_timeout,
            read_timeout=self.storage_read_timeout,
            max_attempts=self.storage_max_attempts,
            addressing_style=self.s3_addressing_style,
        )

    @property
    def broker_kind(self) -> str:
        """``redis``, ``amqp`` or ``embedded``: the broker family in use."""
        if self.embedded_broker:
            return "embedded"
        return "amqp" if self.broker_url.startswith("amqp") else "redis"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith(EMBEDDED_BROKER_SCHEME + ":")

    @property
    def sqlalchemy_url(self) -> str:
        """``database_url`` with psycopg 3 as the PostgreSQL driver."""
        url = self.database_url
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_upload_bytes,
            max_pixels=self.max_pixels,
            min_dimension=self.min_dimension,
            max_frames=self.max_frames,
        )

    def presets(self) -> dict[str, Preset]:
        overrides = json.loads(self.presets_json) if self.presets_json else None
        if overrides is not None and not isinstance(overrides, dict):
            raise PresetError("IMAGE_PIPELINE_PRESETS must be a JSON object.")
        return build_presets(overrides)

    def sinks(self) -> dict[str, Any]:
        """Sink settings by source type; the default syncs avatar URLs."""
        if not self.sinks_json:
            return {"avatar": [{"type": "column", "upsert": self.embedded_database}]}
        value = json.loads(self.sinks_json)
        if not isinstance(value, dict):
            raise ValueError("IMAGE_PIPELINE_SINKS must be a JSON object.")
        return value

    def keep_latest(self) -> dict[str, int]:
        value = json.loads(self.keep_latest_json) if self.keep_latest_json else {}
        if not isinstance(value, dict) or not all(
            isinstance(n, int) and n >= 1 for n in value.values()
        ):
            raise ValueError(
                "IMAGE_PIPELINE_KEEP_LATEST must map source types to whole numbers "
                "of at least 1."
            )
        return value

    @property
    def dedupe(self) -> frozenset[str]:
        return frozenset(
            name.strip() for name in self.dedupe_source_types.split(",") if name.strip()
        )

    @property
    def embedded_database(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite:")

    def problems(self) -> list[str]:
        """Every invalid setting, as sentences; empty when all is well."""
        return [
            *self._url_problems(),
            *self._limit_problems(),
            *self._timing_problems(),
            *self._preset_problems(),
            *self._delivery_problems(),
            *self._security_problems(),
        ]

    def check(self) -> Settings:
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    def _url_problems(self) -> list[str]:
        problems = []
        scheme = urlparse(self.sqlalchemy_url).scheme.split("+")[0]
        if scheme not in ("sqlite", "postgresql"):
            problems.append(
                f"DATABASE_URL scheme {scheme!r} is not supported; use postgresql:// "
                "or sqlite:///path."
            )
        broker = urlparse(self.broker_url).scheme
        if broker not in ("redis", "rediss", "amqp", "amqps", EMBEDDED_BROKER_SCHEME):
            problems.append(
                f"BROKER_URL scheme {broker!r} is not supported; use redis:// or "
                "amqp://."
            )
        problems.extend(_storage_url_problems(self.storage_url))
        if self.s3_addressing_style not in ("auto", "path", "virtual"):
            problems.append(
                f"IMAGE_PIPELINE_S3_ADDRESSING_STYLE {self.s3_addressing_style!r} "
                "is not one of auto, path or virtual."
            )
        if self.log_format not in ("text", "json"):
            problems.append(
                f"IMAGE_PIPELINE_LOG_FORMAT {self.log_format!r} is not text or json."
            )
        return problems

    def _limit_problems(self) -> list[str]:
        positive = {
            "IMAGE_PIPELINE_MAX_BYTES": self.max_upload_bytes,
            "IMAGE_PIPELINE_MAX_PIXELS": self.max_pixels,
            "IMAGE_PIPELINE_MIN_DIMENSION": self.min_dimension,
            "IMAGE_PIPELINE_MAX_FRAMES": self.max_frames,
            "IMAGE_PIPELINE_MAX_ATTEMPTS": self.max_attempts,
            "IMAGE_PIPELINE_STORAGE_MAX_ATTEMPTS": self.storage_max_attempts,
        }
        sandbox = {
            "IMAGE_PIPELINE_WORKER_MAX_ADDRESS_SPACE_MB": (
                self.worker_max_address_space_mb
            ),
            "IMAGE_PIPELINE_WORKER_MAX_CPU_SECONDS": self.worker_max_cpu_seconds,
            "IMAGE_PIPELINE_REQUEST_TIMEOUT": self.request_timeout,
        }
        return [
            f"{name} is {value}; it must be at least 1."
            for name, value in positive.items()
            if value < 1
        ] + [
            f"{name} is {value}; it must be 0 (no limit) or more."
            for name, value in sandbox.items()
            if value < 0
        ]

    def _timing_problems(self) -> list[str]:
        """The relations that keep a job from being lost or run twice."""
        relations = [
            ("soft time limit", self.soft_time_limit, "hard time limit"),
            ("hard time limit", self.hard_time_limit, "lease"),
            ("lease renewal interval", self.lease_renew_seconds, "half the lease"),
            ("lease", self.lease_seconds, "visibility timeout"),
            ("longest retry backoff", self.retry_backoff_max, "visibility timeout"),
            ("hard time limit", self.hard_time_limit, "orphan grace"),
        ]
        larger = {
            "hard time limit": self.hard_time_limit,
            "lease": self.lease_seconds,
            "half the lease": self.lease_seconds / 2,
            "visibility timeout": self.visibility_timeout,
            "orphan grace": self.orphan_grace,
        }
        problems = [
            f"The {name} must be shorter than the {bound} ({value:g} s is not "
            f"less than {larger[bound]:g} s); see the timing settings "
            "(IMAGE_PIPELINE_SOFT_TIME_LIMIT and after)."
            for name, value, bound in relations
            if not value < larger[bound]
        ]
        intervals = {
            "IMAGE_PIPELINE_LEASE_RENEW": self.lease_renew_seconds,
            "IMAGE_PIPELINE_REAPER_INTERVAL": self.reaper_interval,
            "IMAGE_PIPELINE_PENDING_GRACE": self.pending_grace,
            "IMAGE_PIPELINE_DISPATCH_TIMEOUT": self.dispatch_timeout,
            "IMAGE_PIPELINE_COLLECT_INTERVAL": self.collect_interval,
        }
        problems += [
            f"{name} is {value:g}; it must be more than 0 seconds."
            for name, value in intervals.items()
            if value <= 0
        ]
        return problems

    def _security_problems(self) -> list[str]:
        from limits import parse

        from app.security import AUTH_MODES, parse_api_keys

        problems = []
        if self.auth not in AUTH_MODES:
            problems.append(
                f"IMAGE_PIPELINE_AUTH is {self.auth!r}; use one of {AUTH_MODES}."
            )
        try:
            keys = parse_api_keys(self.api_keys)
        except ValueError as exc:
            problems.append(str(exc))
        else:
            if self.auth == "api-key" and not keys:
                problems.append(
                    "IMAGE_PIPELINE_AUTH is 'api-key' but IMAGE_PIPELINE_API_KEYS "
                    "names no key."
                )
        for name, rate in (
            ("IMAGE_PIPELINE_UPLOAD_RATE", self.upload_rate),
            ("IMAGE_PIPELINE_UPLOAD_RATE_PER_ADDRESS", self.upload_rate_per_address),
        ):
            if rate.strip() not in ("", "0"):
                try:
                    parse(rate)
                except ValueError:
                    problems.append(
                        f"{name} is {rate!r}; write it like '60/minute' or '0'."
                    )
        return problems

    def _delivery_problems(self) -> list[str]:
        from app.sinks import build_sinks

        problems = _json_problem(self.keep_latest, "IMAGE_PIPELINE_KEEP_LATEST")
        sink_problems = _json_problem(self.sinks, "IMAGE_PIPELINE_SINKS")
        if not sink_problems:
            sink_problems = _json_problem(
                lambda: build_sinks(self.sinks(), self.webhook_timeout),
                "IMAGE_PIPELINE_SINKS",
            )
        return problems + sink_problems

    def _preset_problems(self) -> list[str]:
        try:
            self.presets()
        except json.JSONDecodeError as exc:
            return [f"IMAGE_PIPELINE_PRESETS is not valid JSON: {exc.msg}."]
        except PresetError as exc:
            return [str(exc)]
        return []


def _storage_url_problems(url: str) -> list[str]:
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.path.startswith("/"):
        return []
    if parsed.scheme == "s3" and S3_BUCKET.match(parsed.netloc):
        return []
    if parsed.scheme == "s3":
        return [
            f"STORAGE_URL {url!r} does not name a valid bucket; use "
            "s3://bucket/optional/prefix with a 3-63 character bucket name."
        ]
    return [
        f"STORAGE_URL {url!r} is not supported; use file:///absolute/path or "
        "s3://bucket/prefix."
    ]


def _json_problem(read: Callable[[], object], variable: str) -> list[str]:
    try:
        read()
    except json.JSONDecodeError as exc:
        return [f"{variable} is not valid JSON: {exc.msg}."]
    except ValueError as exc:
        return [str(exc)]
    return []


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting."""
    return [
        (f.metadata["env"], repr(f.default), f.metadata["doc"])
        for f in fields(Settings)
    ]


def describe_values(settings: Settings) -> list[tuple[str, str]]:
    """(environment variable, value) for every setting, with secrets masked."""
    return [
        (f.metadata["env"], str(_masked(getattr(settings, f.name))))
        for f in fields(Settings)
    ]


def _masked(value: Any) -> Any:
    """``value`` with URL passwords and JSON ``secret`` fields replaced."""
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            return json.dumps(_masked(json.loads(value)))
        except json.JSONDecodeError:
            return value
    if isinstance(value, str):
        return _masked_url(value)
    if isinstance(value, dict):
        return {
            key: MASK
            if "secret" in key.lower() or "password" in key.lower()
            else _masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _masked_url(value: str) -> str:
    parsed = urlparse(value)
    if not parsed.password:
        return value
    netloc = parsed.netloc.replace(f":{parsed.password}@", f":{MASK}@", 1)
    return parsed._replace(netloc=netloc).geturl()


def _parse(kind: type, raw: str) -> Any:
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return kind(raw)
