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
    from app.security import Authenticate


def create_app(
    settings: Settings | None = None, *, authenticate: Authenticate | None = None
) -> Flask:
    """The service as a Flask app; ``authenticate`` as for ImagePipeline."""
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from app.extension import ImagePipeline
    from workers import celery_init_app

    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    pipeline = ImagePipeline(app, settings, authenticate=authenticate)
    hops = pipeline.settings.trusted_proxies
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    celery_init_app(app)
    return app
