"""Image pipeline: user uploads in, web-ready media out.

:func:`create_app` builds the Flask application with the pipeline extension
(:class:`app.extension.ImagePipeline`) and its Celery app; a host with a Flask
app of its own uses the extension and :func:`workers.celery_init_app` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from flask import Flask

    from app.extension import ImagePipeline
    from workers import celery_init_app

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    ImagePipeline(app, settings)
    celery_init_app(app)
    return app
