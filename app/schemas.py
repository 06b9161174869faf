"""The HTTP API's request and response shapes, as marshmallow schemas.

They validate requests and generate the OpenAPI document served at
``/image-pipeline/openapi.json``; field names are the camelCase of the wire.
Responses are the records' ``to_json()`` dumped through these schemas, and a
test checks that the two agree.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from werkzeug.datastructures import FileStorage

from app.extension import MAX_SOURCE_ID, SOURCE_ID_RULE, SOURCE_TYPE, SOURCE_TYPE_RULE
from app.models import Status

STATUSES = [status.value for status in Status]


def _datetime(description: str) -> fields.String:
    return fields.String(
        required=True, metadata={"format": "date-time", "description": description}
    )


class Upload(fields.Field[FileStorage]):
    """A file part of a multipart body."""

    def _deserialize(
        self, value: object, attr: str | None, data: object, **_: object
    ) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise self.make_error("invalid")
        return value

    default_error_messages = {"invalid": "file must be a file part."}


class UploadRequest(Schema):
    file = Upload(
        required=True,
        error_messages={
            "required": "file is required: send the image as multipart field 'file'."
        },
        metadata={"type": "string", "format": "binary", "description": "The image."},
    )
    sourceType = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, error="sourceType is required."),
            validate.Regexp(SOURCE_TYPE, error=SOURCE_TYPE_RULE),
        ],
        error_messages={"required": "sourceType is required."},
        metadata={
            "description": "What the image is for: avatar, gallery, cover, ...",
            "example": "avatar",
        },
    )
    sourceId = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, error="sourceId is required."),
            validate.Length(max=MAX_SOURCE_ID, error=SOURCE_ID_RULE),
        ],
        error_messages={"required": "sourceId is required."},
        metadata={"description": "Whose it is: a user id, a post id.", "example": "42"},
    )
    focusX = fields.Float(
        validate=validate.Range(0, 1),
        metadata={"description": "Focal point for square crops, share of the width."},
    )
    focusY = fields.Float(
        validate=validate.Range(0, 1),
        metadata={"description": "Focal point for square crops, share of the height."},
    )


MEDIA_QUERY_RULE = "sourceType and sourceId are required query parameters."


def _query_field() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Length(min=1, error=MEDIA_QUERY_RULE),
        error_messages={"required": MEDIA_QUERY_RULE},
    )


class MediaQuery(Schema):
    sourceType = _query_field()
    sourceId = _query_field()


class ErrorBody(Schema):
    error = fields.String(
        required=True, metadata={"description": "What went wrong, for a person."}
    )
    code = fields.String(
        metadata={"description": "Stable machine code, e.g. too_many_pixels."}
    )


class Accepted(Schema):
    jobId = fields.String(required=True, metadata={"format": "uuid"})
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))


class Variant(Schema):
    name = fields.String(required=True)
    url = fields.String(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    format = fields.String(required=True)
    bytes = fields.Integer(required=True)


class Media(Schema):
    id = fields.String(required=True)
    jobId = fields.String(required=True)
    sourceType = fields.String(required=True)
    sourceId = fields.String(required=True)
    urls = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    variants = fields.List(fields.Nested(Variant), required=True)
    blurhash = fields.String(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    aspectRatio = fields.Float(required=True)
    dominantColor = fields.String(required=True, metadata={"example": "#6b5a4c"})
    originalFormat = fields.String(required=True)
    preset = fields.String(required=True)
    presetVersion = fields.String(required=True)
    createdAt = _datetime("When the media was completed.")


class Job(Schema):
    id = fields.String(required=True, metadata={"format": "uuid"})
    jobId = fields.String(required=True, metadata={"format": "uuid"})
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    sourceType = fields.String(required=True)
    sourceId = fields.String(required=True)
    attempts = fields.Integer(required=True)
    error = fields.String(required=True, allow_none=True)
    errorCode = fields.String(required=True, allow_none=True)
    media = fields.Nested(Media, required=True, allow_none=True)
    createdAt = _datetime("When the upload was accepted.")
    updatedAt = _datetime("When the job last changed.")
