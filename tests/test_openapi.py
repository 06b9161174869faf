"""The OpenAPI document: generated from the code, complete, and true.

schemathesis generates requests from the document, sends them to the app and
checks every response against it: no 5xx, documented status codes, content
types and bodies matching their schemas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app import create_app, schemas
from app.config import Settings
from app.extension import ImagePipeline
from app.migrate import upgrade
from app.processing import Result
from tests.images import image_bytes

SPEC = "/image-pipeline/openapi.json"
UNDOCUMENTED = {
    "/image-pipeline/",  # the demo page
    SPEC,
    "/image-pipeline/docs",
    "/image-pipeline/docs/assets/<path:name>",
    "/image-pipeline/static/<path:filename>",
}


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    data = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(data_dir=str(data)).resolved())
    pipeline: ImagePipeline = app.extensions["image_pipeline"]
    upgrade(pipeline.db)
    pipeline.dispatch = pipeline.processor.run  # type: ignore[assignment]
    pipeline.submit(image_bytes((800, 600)), "gallery", "1")
    yield app
    pipeline.db.dispose()


@pytest.fixture(scope="module")
def api_schema(api_app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi(SPEC, api_app)


def test_every_route_is_described(api_app: Flask) -> None:
    spec = api_app.test_client().get(SPEC).get_json()
    documented = {path.replace("{", "<").replace("}", ">") for path in spec["paths"]}
    routes = {
        rule.rule
        for rule in api_app.url_map.iter_rules()
        if rule.rule.startswith("/image-pipeline")
    }
    described = {
        rule for rule in routes if rule.replace("<path:key>", "<key>") in documented
    }
    assert routes - UNDOCUMENTED == described


def test_the_docs_page_and_its_assets_are_served_locally(api_app: Flask) -> None:
    client = api_app.test_client()
    page = client.get("/image-pipeline/docs")
    assert page.status_code == 200
    assert b"/image-pipeline/docs/assets/swagger-ui-bundle.js" in page.data
    asset = client.get("/image-pipeline/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.get_data()) > 100_000
    asset.close()


def test_response_schemas_carry_every_field_of_the_records(
    pipeline: ImagePipeline, run_jobs: Callable[[], list[Result]]
) -> None:
    job_id = pipeline.submit(image_bytes((640, 480)), "avatar", "3")
    run_jobs()
    record = pipeline.get_status(job_id)
    assert record is not None and record.media is not None
    assert schemas.Job().dump(record.to_json()) == record.to_json()
    assert schemas.Job().validate(record.to_json()) == {}


OPERATIONS = [
    "POST /image-pipeline/upload",
    "GET /image-pipeline/status/{job_id}",
    "GET /image-pipeline/media",
    "DELETE /image-pipeline/media/{media_id}",
    "GET /image-pipeline/files/{key}",
]


@pytest.mark.parametrize("name", OPERATIONS)
def test_the_api_keeps_the_promises_of_its_document(api_schema: Any, name: str) -> None:
    method, path = name.split(" ")
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    def call(case: Any) -> None:
        # A schema cannot say "the bytes must be an image": random bytes are
        # valid by the schema, and the upload rightly refuses them with 415.
        excluded = [positive_data_acceptance] if "upload" in path else []
        case.call_and_validate(excluded_checks=excluded)

    call()


def test_every_operation_is_exercised(api_schema: Any) -> None:
    found = {
        f"{result.ok().method.upper()} {result.ok().path}"
        for result in api_schema.get_all_operations()
    }
    assert found == set(OPERATIONS)
