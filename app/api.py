"""HTTP routes under ``/image-pipeline``, and the one error handler.

Bodies use camelCase names, as the Node plugin does, so its front ends work
unchanged. Every error, expected or not, answers JSON ``{"error": ...}``;
nothing a client sends can produce a stack trace in a response.
"""

from __future__ import annotations

import logging
import mimetypes
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    request,
    send_file,
)
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.errors import BadRequest, NotFound, PipelineError, TransientError
from app.extension import ImagePipeline
from app.storage import LocalStorage, is_valid_key

log = logging.getLogger(__name__)

blueprint = Blueprint("image_pipeline", __name__)

JOB_NOT_FOUND = "Job not found"
MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "public, max-age=31536000, immutable",
}


def pipeline() -> ImagePipeline:
    extension: ImagePipeline = current_app.extensions["image_pipeline"]
    return extension


@blueprint.before_request
def limit_body() -> None:
    # Multipart overhead on top of the file itself.
    request.max_content_length = pipeline().settings.max_upload_bytes + 64 * 1024


@blueprint.post("/upload")
def upload() -> tuple[Response, int]:
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("file is required: send the image as multipart field 'file'.")
    accepted = pipeline().accept(
        upload.stream,
        request.form.get("sourceType", ""),
        request.form.get("sourceId", ""),
        idempotency_key=request.headers.get("Idempotency-Key"),
        focus=_focus(request.form.get("focusX"), request.form.get("focusY")),
    )
    return jsonify(jobId=accepted.job_id, status=accepted.status.value), 202


def _focus(x: str | None, y: str | None) -> tuple[float, float] | None:
    if x is None and y is None:
        return None
    try:
        return float(x or ""), float(y or "")
    except ValueError:
        raise BadRequest(
            "focusX and focusY must be given together, as numbers from 0 to 1."
        ) from None


@blueprint.get("/status/<job_id>")
def status(job_id: str) -> Response:
    record = pipeline().get_status(job_id)
    if record is None:
        raise NotFound(JOB_NOT_FOUND, code="job_not_found")
    return jsonify(record.to_json())


@blueprint.get("/media")
def media() -> Response:
    source_type = request.args.get("sourceType")
    source_id = request.args.get("sourceId")
    if not source_type or not source_id:
        raise BadRequest("sourceType and sourceId are required query parameters.")
    records = pipeline().list_media(source_type, source_id)
    return jsonify([record.to_json() for record in records])


@blueprint.delete("/media/<media_id>")
def delete_media(media_id: str) -> tuple[str, int]:
    if not pipeline().delete_media(media_id):
        raise NotFound("Media not found", code="media_not_found")
    return "", 204


@blueprint.get("/files/<path:key>")
def files(key: str) -> Response:
    """Variants from local storage, for the embedded mode; originals stay private."""
    storage = pipeline().storage
    if (
        not isinstance(storage, LocalStorage)
        or not key.startswith("media/")
        or not is_valid_key(key)
        or not storage.exists(key)
    ):
        raise NotFound("File not found", code="file_not_found")
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    response = send_file(storage.path(key), mimetype=content_type, max_age=31536000)
    response.headers.update(MEDIA_HEADERS)
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(PipelineError, _pipeline_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _pipeline_error(exc: PipelineError) -> tuple[Response, int, dict[str, Any]]:
    headers: dict[str, Any] = {}
    if isinstance(exc, TransientError):
        log.warning("request refused, %s: %s", exc.code, exc.__cause__ or exc)
        headers["Retry-After"] = "5"
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return jsonify(exc.to_json()), exc.status, headers


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    if isinstance(exc, RequestEntityTooLarge):
        body = {"error": "The upload is too large.", "code": "file_too_large"}
    else:
        body = {"error": exc.name, "code": exc.name.lower().replace(" ", "_")}
    return jsonify(body), status


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return jsonify(error="Internal error", code="internal_error"), 500
