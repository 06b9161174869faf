"""Helpers for tests that build apps with changed settings (``make_app``)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from app.extension import ImagePipeline

MakeApp = Callable[..., Flask]


def pipeline_of(app: Flask) -> ImagePipeline:
    extension: ImagePipeline = app.extensions["image_pipeline"]
    return extension
