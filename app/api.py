"""HTTP routes under ``/image-pipeline``, their OpenAPI document, and errors.

The routes are a flask-smorest blueprint: the schemas in :mod:`app.schemas`
validate each request and describe it in the OpenAPI document served at
``/image-pipeline/openapi.json`` (browsable at ``/image-pipeline/docs``).
Bodies use camelCase names, as the Node plugin does, so its front ends work
unchanged. Every error under ``/image-pipeline``, expected or not, answers
JSON ``{"error": ..., "code": ...}``; nothing a client sends can produce a
stack trace in a response.
"""

from __future__ import annotations

import logging
import mimetypes
from typing import Any

import flask_smorest
import swagger_ui_bundle
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    request,
    send_file,
    send_from_directory,
)
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import schemas
from app.errors import (
    BadRequest,
    NotFound,
    PipelineError,
    TransientError,
    Unauthorized,
)
from app.extension import ImagePipeline
from app.storage import LocalStorage, is_valid_key

log = logging.getLogger(__name__)

PREFIX = "/image-pipeline"
API_VERSION = "1.0.0"
JOB_NOT_FOUND = "Job not found"
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
"""1-255 printable ASCII characters, not starting or ending with a space."""
MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "public, max-age=31536000, immutable",
}
ERRORS = {
    400: "A field is missing or malformed.",
    404: "No such job or media.",
    401: "Authentication is on and the request has no valid credentials.",
    413: "The upload is larger than the limit.",
    415: "Not an image of an allowed type.",
    429: "Too many uploads, or too many unfinished jobs; see Retry-After.",
    503: "A dependency is down; nothing was written. Retry after Retry-After.",
}


class MultipartParser(FlaskParser):
    """Reads a multipart body's files and fields as one mapping.

    An upload is one ``multipart/form-data`` body with a file part and text
    parts; one schema describes and validates it.
    """

    def load_files(self, req: Any, schema: Any) -> Any:
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


class ApiBlueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = MultipartParser()


blueprint = ApiBlueprint(
    "image_pipeline",
    __name__,
    description="Upload images, follow their jobs, and list an owner's media.",
)
docs_assets = Blueprint("image_pipeline_docs_assets", __name__)


def pipeline() -> ImagePipeline:
    extension: ImagePipeline = current_app.extensions["image_pipeline"]
    return extension


@blueprint.before_request
def admit() -> None:
    """Authenticate, and for uploads check the quota, before any body is read."""
    extension = pipeline()
    g.principal = extension.authenticator.principal(request)
    if request.endpoint == f"{blueprint.name}.upload":
        # Multipart overhead on top of the file itself.
        request.max_content_length = extension.settings.max_upload_bytes + 64 * 1024
        extension.quota.check(g.principal, request.remote_addr)


def principal() -> str | None:
    found: str | None = g.get("principal")
    return found


@blueprint.post("/upload")
@blueprint.arguments(schemas.UploadRequest, location="files", error_status_code=400)
@blueprint.response(202, schemas.Accepted)
@blueprint.alt_response(400, schema=schemas.ErrorBody, description=ERRORS[400])
@blueprint.alt_response(413, schema=schemas.ErrorBody, description=ERRORS[413])
@blueprint.alt_response(415, schema=schemas.ErrorBody, description=ERRORS[415])
@blueprint.alt_response(429, schema=schemas.ErrorBody, description=ERRORS[429])
@blueprint.alt_response(503, schema=schemas.ErrorBody, description=ERRORS[503])
@blueprint.doc(
    parameters=[
        {
            "in": "header",
            "name": "Idempotency-Key",
            "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            "description": "The same key from the same owner returns the same job.",
        }
    ]
)
def upload(form: dict[str, Any]) -> dict[str, str]:
    """Accept an image for an owner; the job id comes back at once."""
    accepted = pipeline().accept(
        form["file"].stream,
        form["sourceType"],
        form["sourceId"],
        idempotency_key=request.headers.get("Idempotency-Key"),
        focus=_focus(form.get("focusX"), form.get("focusY")),
        principal=principal(),
    )
    return {"jobId": accepted.job_id, "status": accepted.status.value}


def _focus(x: float | None, y: float | None) -> tuple[float, float] | None:
    if x is None and y is None:
        return None
    if x is None or y is None:
        raise BadRequest("focusX and focusY must be given together.")
    return x, y


@blueprint.get("/status/<job_id>")
@blueprint.response(200, schemas.Job)
@blueprint.alt_response(404, schema=schemas.ErrorBody, description=ERRORS[404])
def status(job_id: str) -> dict[str, Any]:
    """The job, with its media once COMPLETE."""
    record = pipeline().get_status(job_id, principal=principal())
    if record is None:
        raise NotFound(JOB_NOT_FOUND, code="job_not_found")
    return record.to_json()


@blueprint.get("/media")
@blueprint.arguments(schemas.MediaQuery, location="query", error_status_code=400)
@blueprint.response(200, schemas.Media(many=True))
@blueprint.alt_response(400, schema=schemas.ErrorBody, description=ERRORS[400])
def media(query: dict[str, str]) -> list[dict[str, Any]]:
    """An owner's completed media, newest first."""
    records = pipeline().list_media(
        query["sourceType"], query["sourceId"], principal=principal()
    )
    return [record.to_json() for record in records]


@blueprint.delete("/media/<media_id>")
@blueprint.response(204)
@blueprint.alt_response(404, schema=schemas.ErrorBody, description=ERRORS[404])
def delete_media(media_id: str) -> None:
    """Delete a media, its job, and every stored file of it."""
    if not pipeline().delete_media(media_id, principal=principal()):
        raise NotFound("Media not found", code="media_not_found")


@blueprint.get("/files/<path:key>")
@blueprint.response(
    200,
    description="A stored variant (embedded mode's media host).",
    content_type="image/webp",
)
@blueprint.alt_response(404, schema=schemas.ErrorBody, description=ERRORS[404])
def files(key: str) -> Response:
    """Variants from local storage; originals stay private."""
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


@docs_assets.get(f"{PREFIX}/docs/assets/<path:name>")
def docs_asset(name: str) -> Response:
    """Swagger UI's files, from the swagger-ui-bundle package, not a CDN."""
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, name)


def register(app: Flask, extension: ImagePipeline) -> None:
    """Mount the routes, the OpenAPI document and the error handlers."""
    config = {
        "API_TITLE": "Image pipeline",
        "API_VERSION": API_VERSION,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": f"{PREFIX}/docs/assets/",
    }
    for name, value in config.items():
        app.config.setdefault(f"IMAGE_PIPELINE_{name}", value)
    api = flask_smorest.Api(app, config_prefix="IMAGE_PIPELINE")
    if extension.settings.auth != "none" or extension.authenticator.hook:
        api.spec.components.security_scheme(
            "apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        )
        api.spec.options["security"] = [{"apiKey": []}]
    api.register_blueprint(blueprint, url_prefix=PREFIX)
    app.register_blueprint(docs_assets)
    app.register_error_handler(PipelineError, _pipeline_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _ours() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def _pipeline_error(exc: PipelineError) -> tuple[Response, int, dict[str, str]]:
    headers: dict[str, str] = {}
    if isinstance(exc, TransientError):
        log.warning("request refused, %s: %s", exc.code, type(exc.__cause__).__name__)
        headers["Retry-After"] = "5"
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="image-pipeline"'
    return _json(exc.to_json()), exc.status, headers


def _http_error(exc: HTTPException) -> Any:
    if not _ours():
        return exc
    status = exc.code or 500
    if isinstance(exc, RequestEntityTooLarge):
        body = {"error": "The upload is too large.", "code": "file_too_large"}
    elif status == 400 and (data := getattr(exc, "data", None)):
        body = {"error": _sentence(data.get("messages", {})), "code": "bad_request"}
    else:
        body = {"error": exc.name, "code": exc.name.lower().replace(" ", "_")}
    return _json(body), status


def _sentence(messages: Any) -> str:
    """webargs' nested ``{location: {field: [message]}}`` as one sentence."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif str(value) not in found:
            found.append(str(value))

    walk(messages)
    return " ".join(found) or "The request is malformed."


def _unexpected_error(exc: Exception) -> Any:
    if not _ours():
        raise exc
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return _json({"error": "Internal error", "code": "internal_error"}), 500


def _json(body: dict[str, str]) -> Response:
    return jsonify(body)
