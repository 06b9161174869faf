"""The demo page at ``/image-pipeline/``: upload, watch, inspect, list, delete.

One HTML page, a stylesheet and two small scripts in ``app/static``, with no
build step and nothing loaded from another site. The page talks to the
service only through its public HTTP routes, so it doubles as an example of a
front end for them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, make_response, render_template

from app.extension import ImagePipeline

blueprint = Blueprint(
    "image_pipeline_demo",
    __name__,
    url_prefix="/image-pipeline",
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)


@blueprint.get("/")
def page() -> Response:
    pipeline: ImagePipeline = current_app.extensions["image_pipeline"]
    presets = pipeline.presets
    source_types = ["default", "avatar"]
    source_types += sorted(set(presets) - set(source_types))
    html = render_template(
        "image_pipeline_demo.html",
        source_types=source_types,
        max_upload_bytes=pipeline.settings.max_upload_bytes,
    )
    response = make_response(html)
    response.headers["Content-Security-Policy"] = content_security_policy(
        pipeline.settings.public_media_url
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def content_security_policy(public_media_url: str) -> str:
    """Own scripts and styles only; images also from the media host, if apart."""
    parts = urlsplit(public_media_url)
    media_origin = f" {parts.scheme}://{parts.netloc}" if parts.netloc else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' blob: data:{media_origin}; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
