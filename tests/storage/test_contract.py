"""What every storage backend promises, checked on local disk and on S3."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from app.errors import StorageError
from app.storage import Storage, StorageOptions, open_storage
from app.storage.s3 import S3Storage
from tests.service import free_port

VARIANT = "media/job-1/v1/sm.webp"
ORIGINAL = "originals/job-1"


def test_put_then_get_returns_the_same_bytes(storage: Storage) -> None:
    storage.put(VARIANT, b"RIFF-webp-bytes", "image/webp")
    assert storage.get(VARIANT) == b"RIFF-webp-bytes"
    assert storage.exists(VARIANT)


def test_put_overwrites_an_existing_key(storage: Storage) -> None:
    storage.put(ORIGINAL, b"first", "application/octet-stream")
    storage.put(ORIGINAL, b"second", "application/octet-stream")
    assert storage.get(ORIGINAL) == b"second"
    assert list(storage.keys("originals")) == [ORIGINAL]


def test_listing_gives_each_key_with_its_modification_time(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    storage.put(VARIANT, b"v", "image/webp")
    storage.put(ORIGINAL, b"o", "application/octet-stream")
    listed = {stored.key: stored.modified for stored in storage.listing()}
    assert set(listed) == {VARIANT, ORIGINAL}
    for modified in listed.values():
        assert before <= modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert [stored.key for stored in storage.listing("media")] == [VARIANT]


def test_a_missing_key_does_not_exist_and_cannot_be_read(storage: Storage) -> None:
    assert not storage.exists("media/nobody/v1/sm.webp")
    with pytest.raises(StorageError):
        storage.get("media/nobody/v1/sm.webp")


def test_delete_removes_and_is_idempotent(storage: Storage) -> None:
    storage.put(VARIANT, b"x", "image/webp")
    storage.delete(VARIANT)
    storage.delete(VARIANT)
    storage.delete("media/never/v1/sm.webp")
    assert not storage.exists(VARIANT)


def test_keys_lists_a_folder_and_everything_below_it(storage: Storage) -> None:
    wanted = {f"media/job-1/v1/{name}.webp" for name in ("sm", "md", "lg")}
    for key in [*wanted, "media/job-10/v1/sm.webp", ORIGINAL]:
        storage.put(key, b"x", "image/webp")
    assert set(storage.keys("media/job-1")) == wanted
    assert set(storage.keys("media/job-1/")) == wanted
    assert len(set(storage.keys())) == 5
    assert list(storage.keys("media/nobody")) == []


def test_keys_pages_through_more_than_one_listing(storage: Storage) -> None:
    # S3 lists 1,000 keys per page; this crosses a page boundary.
    for index in range(1005):
        storage.put(f"media/many/v1/{index:04}.webp", b"", "image/webp")
    assert len(list(storage.keys("media/many"))) == 1005


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/absolute", "media/../originals/x", "", "a//b", "sp ace"]
)
def test_invalid_keys_are_refused_before_any_call(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="not a valid key"):
        storage.put(key, b"x", "image/webp")
    with pytest.raises(ValueError, match="not a valid key"):
        storage.exists(key)


def test_check_passes_when_the_store_is_reachable(storage: Storage) -> None:
    storage.check()


def test_s3_variants_are_public_immutable_webp(s3_env: str) -> None:
    storage = _bucket_storage(s3_env)
    storage.put(VARIANT, b"x", "image/webp")
    head = storage.head(VARIANT)
    assert head["ContentType"] == "image/webp"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"


def test_s3_originals_stay_private(s3_env: str) -> None:
    storage = _bucket_storage(s3_env)
    storage.put(ORIGINAL, b"x", "application/octet-stream")
    assert storage.head(ORIGINAL)["CacheControl"] == "private, no-store"
    grants = storage.client.get_object_acl(
        Bucket=storage.bucket, Key=storage.prefix + ORIGINAL
    )["Grants"]
    assert not any(
        grant["Grantee"].get("URI", "").endswith("/AllUsers") for grant in grants
    )


def test_s3_keys_live_under_the_url_prefix(s3_env: str) -> None:
    storage = _bucket_storage(s3_env)
    storage.put(VARIANT, b"x", "image/webp")
    listed = storage.client.list_objects_v2(Bucket=storage.bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"site-a/{VARIANT}"]


def test_an_unreachable_s3_fails_fast_as_a_storage_error(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    storage = open_storage(
        "s3://media/site-a", StorageOptions(connect_timeout=1, max_attempts=2)
    )
    started = time.monotonic()
    for call in (
        lambda: storage.put(VARIANT, b"x", "image/webp"),
        lambda: storage.get(VARIANT),
        lambda: storage.exists(VARIANT),
        lambda: storage.delete(VARIANT),
        lambda: list(storage.keys("media")),
        storage.check,
    ):
        with pytest.raises(StorageError) as raised:
            call()
        assert raised.value.__cause__ is not None
    assert time.monotonic() - started < 15


def test_open_storage_refuses_an_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="'ftp' is not supported"):
        open_storage("ftp://host/media")


def _bucket_storage(endpoint: str) -> S3Storage:
    import uuid

    from tests.s3 import make_bucket

    bucket = f"media-{uuid.uuid4().hex[:12]}"
    make_bucket(endpoint, bucket)
    storage = open_storage(f"s3://{bucket}/site-a")
    assert isinstance(storage, S3Storage)
    return storage
