"""The pipeline's exceptions, one tree for the whole service.

Every error knows the HTTP status it maps to, a stable machine ``code`` and a
message that is safe to show to the person who sent the request::

    PipelineError
    ├── BadRequest                 400  a missing or malformed field
    ├── Unauthorized               401  no valid credentials
    ├── NotFound                   404  a job or media that does not exist
    ├── PayloadTooLarge            413  an upload over the byte limit
    ├── ImageRejected              415  input that can never succeed
    ├── RateLimited                429  too many requests from one client
    └── TransientError             503  a dependency failed; worth retrying
        ├── StorageError                the object store failed
        ├── DatabaseUnavailable         the database failed
        ├── BrokerUnavailable           the broker failed
        └── DeliveryError               a sink did not take a delivery

Foreign exceptions (Pillow's, SQLAlchemy's, the storage client's) are turned
into these at one boundary each, with ``raise ... from exc``, so callers never
branch on a library's exception types or on message text.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


class BadRequest(PipelineError):
    status = 400
    code = "bad_request"


class Unauthorized(PipelineError):
    status = 401
    code = "unauthorized"


class NotFound(PipelineError):
    status = 404
    code = "not_found"


class PayloadTooLarge(PipelineError):
    status = 413
    code = "file_too_large"


REJECTION_CODES = frozenset(
    {
        "empty_file",
        "file_too_large",
        "unsupported_format",
        "too_many_pixels",
        "too_small",
        "too_many_frames",
        "corrupt_image",
        "too_large_to_decode",
    }
)
"""The stable codes of :class:`ImageRejected`, documented in the README."""


class ImageRejected(PipelineError):
    """The input can never become media: a job with it ends REJECTED.

    ``code`` is one of :data:`REJECTION_CODES`.
    """

    status = 415
    code = "unsupported_format"


class RateLimited(PipelineError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(PipelineError):
    """A failure of something outside the job's input; retrying may succeed."""

    status = 503
    code = "unavailable"


class StorageError(TransientError):
    code = "storage_unavailable"


class DatabaseUnavailable(TransientError):
    code = "database_unavailable"


class BrokerUnavailable(TransientError):
    code = "broker_unavailable"


class DeliveryError(TransientError):
    code = "delivery_failed"
