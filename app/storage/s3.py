"""S3-compatible object storage: AWS S3, Cloudflare R2, MinIO.

``STORAGE_URL=s3://bucket/prefix`` names the bucket and an optional key
prefix. Everything else comes from boto3's usual sources: the endpoint from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (R2, MinIO), the region from
``AWS_REGION`` or ``AWS_DEFAULT_REGION``, credentials from
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (or a profile, or an
instance role). Objects are never given a public ACL: the bucket's policy or
a CDN in front of ``media/`` makes the variants public, and the originals
stay private.

Every call has connect and read timeouts and a bounded number of tries, so a
storage outage makes a worker retry the job later instead of hanging it; and
every botocore failure becomes a :class:`StorageError` in :meth:`_calling`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.errors import StorageError
from app.storage.keys import cache_control, check_key
from app.storage.local import Stored
from app.storage.options import StorageOptions

MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


class S3Storage:
    """Objects in one bucket, under an optional key prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    @classmethod
    def from_url(cls, url: str, options: StorageOptions) -> S3Storage:
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ValueError(f"STORAGE_URL {url!r} names no bucket.")
        return cls(make_client(options), parsed.netloc, parsed.path)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._calling("save a file"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._name(key),
                Body=data,
                ContentType=content_type,
                CacheControl=cache_control(key),
            )

    def get(self, key: str) -> bytes:
        with self._calling("read a file"):
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
            body: bytes = response["Body"].read()
            return body

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            with self._calling("look for a file"):
                self.client.head_object(Bucket=self.bucket, Key=name)
        except StorageError as exc:
            if _is_missing(exc.__cause__):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        # S3 answers a delete of a missing key with success: idempotent.
        with self._calling("delete a file"):
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def keys(self, prefix: str = "") -> Iterator[str]:
        for stored in self.listing(prefix):
            yield stored.key

    def listing(self, prefix: str = "") -> Iterator[Stored]:
        folder = self.prefix + (check_key(prefix.rstrip("/")) + "/" if prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        with self._calling("list files"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    modified = item["LastModified"].astimezone(UTC)
                    yield Stored(item["Key"][len(self.prefix) :], modified)

    def check(self) -> None:
        with self._calling("reach its bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def head(self, key: str) -> dict[str, Any]:
        """The object's metadata (``ContentType``, ``CacheControl``, ...)."""
        with self._calling("describe a file"):
            response: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self._name(key)
            )
            return response

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        """The one place where botocore's errors become ``StorageError``."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"The media store could not {action}.") from exc


def make_client(options: StorageOptions) -> Any:
    """A boto3 S3 client with bounded timeouts and tries."""
    custom_endpoint = any(os.environ.get(name) for name in ENDPOINT_VARIABLES)
    style = options.addressing_style
    if style == "auto" and custom_endpoint:
        style = "path"
    config = Config(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"mode": "standard", "total_max_attempts": options.max_attempts},
        s3={"addressing_style": style},
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.session.Session().client("s3", region_name=region, config=config)


def _is_missing(error: BaseException | None) -> bool:
    if not isinstance(error, ClientError):
        return False
    return error.response.get("Error", {}).get("Code") in MISSING_CODES
