"""Authentication, ownership and quotas."""

from __future__ import annotations

import io
import os
import time

import fakeredis
import pytest
from click.testing import CliRunner
from flask import Flask, Request
from limits.storage import RedisStorage
from werkzeug.datastructures import FileStorage
from werkzeug.test import TestResponse, encode_multipart

from app.cli import main
from app.errors import RateLimited
from app.security import UploadQuota, hash_key, parse_api_keys
from tests.apps import MakeApp, pipeline_of
from tests.images import image_bytes

ALICE_KEY = "alice-secret-key"
BOB_KEY = "bob-secret-key"
KEYS = f"alice:{hash_key(ALICE_KEY)},bob:{hash_key(BOB_KEY)}"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def upload(
    app: Flask,
    headers: dict[str, str] | None = None,
    address: str = "203.0.113.7",
    owner: str = "1",
) -> TestResponse:
    boundary, body = encode_multipart(
        {
            "file": FileStorage(io.BytesIO(image_bytes((300, 200))), filename="a.jpg"),
            "sourceType": "gallery",
            "sourceId": owner,
        }
    )
    return app.test_client().post(
        "/image-pipeline/upload",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=headers or {},
        environ_base={"REMOTE_ADDR": address},
    )


def originals(app: Flask) -> list[str]:
    return list(pipeline_of(app).storage.keys("originals"))


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "An API key is required"),
        ({"X-API-Key": "guess"}, "The API key is not valid."),
        ({"Authorization": "Bearer guess"}, "The API key is not valid."),
        ({"Authorization": "Basic YWxpY2U6eA=="}, "An API key is required"),
    ],
)
def test_api_key_mode_refuses_missing_or_wrong_keys_with_401(
    make_app: MakeApp, headers: dict[str, str], message: str
) -> None:
    app = make_app(auth="api-key", api_keys=KEYS)
    response = upload(app, headers)
    assert response.status_code == 401
    assert message in response.get_json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert originals(app) == []


@pytest.mark.parametrize(
    "headers", [{"X-API-Key": ALICE_KEY}, {"Authorization": f"Bearer {ALICE_KEY}"}]
)
def test_a_valid_key_uploads_as_its_principal(
    make_app: MakeApp, headers: dict[str, str]
) -> None:
    app = make_app(auth="api-key", api_keys=KEYS)
    response = upload(app, headers)
    assert response.status_code == 202
    job = pipeline_of(app).jobs.get(response.get_json()["jobId"])
    assert job is not None and job.principal == "alice"


def test_someone_elses_job_is_indistinguishable_from_a_missing_one(
    make_app: MakeApp,
) -> None:
    import uuid

    app = make_app(auth="api-key", api_keys=KEYS)
    pipeline = pipeline_of(app)
    alice = {"X-API-Key": ALICE_KEY}
    bob = {"X-API-Key": BOB_KEY}
    job_id = upload(app, alice).get_json()["jobId"]
    pipeline.processor.run(job_id)
    client = app.test_client()

    mine = client.get(f"/image-pipeline/status/{job_id}", headers=alice)
    assert mine.status_code == 200
    theirs = client.get(f"/image-pipeline/status/{job_id}", headers=bob)
    missing = client.get(f"/image-pipeline/status/{uuid.uuid4()}", headers=bob)
    assert (theirs.status_code, theirs.data) == (missing.status_code, missing.data)
    assert theirs.status_code == 404

    listing = "/image-pipeline/media?sourceType=gallery&sourceId=1"
    assert len(client.get(listing, headers=alice).get_json()) == 1
    assert client.get(listing, headers=bob).get_json() == []

    media_id = mine.get_json()["media"]["id"]
    denied = client.delete(f"/image-pipeline/media/{media_id}", headers=bob)
    assert denied.status_code == 404
    assert (
        client.delete(f"/image-pipeline/media/{media_id}", headers=alice).status_code
        == 204
    )


def test_a_host_callable_decides_the_principal(make_app: MakeApp) -> None:
    def from_session(request: Request) -> str | None:
        return request.headers.get("X-Session-User")

    app = make_app(authenticate=from_session)
    assert upload(app).status_code == 401
    response = upload(app, {"X-Session-User": "user-17"})
    assert response.status_code == 202
    job = pipeline_of(app).jobs.get(response.get_json()["jobId"])
    assert job is not None and job.principal == "user-17"


def test_with_authentication_off_anyone_may_call(make_app: MakeApp) -> None:
    app = make_app()
    assert upload(app).status_code == 202


def test_an_address_over_its_upload_rate_gets_429_and_others_do_not(
    make_app: MakeApp,
) -> None:
    app = make_app(upload_rate_per_address="2/minute")
    assert [upload(app).status_code for _ in range(2)] == [202, 202]
    refused = upload(app)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "the limit is 2 per minute" in refused.get_json()["error"]
    assert len(originals(app)) == 2, "nothing stored for the refused upload"
    assert upload(app, address="198.51.100.4").status_code == 202


def test_a_principal_over_its_rate_is_refused_whatever_its_address(
    make_app: MakeApp,
) -> None:
    app = make_app(
        auth="api-key",
        api_keys=KEYS,
        upload_rate="1/minute",
        upload_rate_per_address="0",
    )
    alice = {"X-API-Key": ALICE_KEY}
    assert upload(app, alice, address="192.0.2.1").status_code == 202
    assert upload(app, alice, address="192.0.2.2").status_code == 429
    assert upload(app, {"X-API-Key": BOB_KEY}, address="192.0.2.2").status_code == 202


def test_a_principal_with_too_many_unfinished_jobs_gets_429(make_app: MakeApp) -> None:
    app = make_app(auth="api-key", api_keys=KEYS, max_active_jobs=2)
    alice = {"X-API-Key": ALICE_KEY}
    first, second = (upload(app, alice).get_json()["jobId"] for _ in range(2))
    refused = upload(app, alice)
    assert refused.status_code == 429
    assert "2 uploads still processing; the limit is 2" in refused.get_json()["error"]
    pipeline_of(app).processor.run(first)
    assert upload(app, alice).status_code == 202


def test_quota_counts_in_redis_are_shared_by_every_web_process() -> None:
    server = fakeredis.FakeServer()

    def web_process() -> UploadQuota:
        quota = UploadQuota("0", "3/minute", "")
        pool = fakeredis.FakeRedis(server=server).connection_pool
        storage = RedisStorage("redis://fake", connection_pool=pool)
        quota.limiter.storage = storage
        return quota

    first, second = web_process(), web_process()
    first.check(None, "10.9.9.9")
    second.check(None, "10.9.9.9")
    first.check(None, "10.9.9.9")
    with pytest.raises(RateLimited) as refused:
        second.check(None, "10.9.9.9")
    assert refused.value.retry_after >= 1
    second.check(None, "10.9.9.8")


if TEST_REDIS_URL:  # the real Redis, where the run has one (CI does)

    def test_quota_counts_are_shared_on_the_real_redis() -> None:
        import uuid

        address = f"quota-test-{uuid.uuid4()}"
        quotas = [UploadQuota("0", "2/minute", TEST_REDIS_URL) for _ in range(2)]
        quotas[0].check(None, address)
        quotas[1].check(None, address)
        with pytest.raises(RateLimited):
            quotas[0].check(None, address)


def test_an_unreachable_quota_store_lets_uploads_through_quickly() -> None:
    quota = UploadQuota("5/minute", "5/minute", "redis://127.0.0.1:9/0")
    started = time.monotonic()
    quota.check("alice", "10.0.0.1")
    assert time.monotonic() - started < 2


def test_keys_new_prints_a_key_and_its_config_entry() -> None:
    result = CliRunner().invoke(main, ["keys", "new", "mobile-app"])
    assert result.exit_code == 0, result.output
    key = result.output.split("shown once): ")[1].split()[0]
    entry = result.output.split("IMAGE_PIPELINE_API_KEYS:")[1].strip()
    assert parse_api_keys(entry) == {hash_key(key): "mobile-app"}
    assert key not in entry
