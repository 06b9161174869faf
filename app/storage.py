"""Where originals and variants live, behind one small interface.

Keys are made by the service, never from a client's file name:
``originals/<job id>`` (private) and
``media/<job id>/<preset version>/<variant>.<ext>`` (public, immutable). The
same job and preset always give the same keys, so a re-run overwrites rather
than leaks. Backend failures surface as :class:`app.errors.StorageError`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from app.errors import StorageError

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def original_key(job_id: str) -> str:
    return f"originals/{job_id}"


def variant_key(job_id: str, preset_version: str, name: str, fmt: str) -> str:
    return f"media/{job_id}/{preset_version}/{name}.{fmt}"


def is_valid_key(key: str) -> bool:
    return bool(_KEY.match(key)) and ".." not in key


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    def keys(self, prefix: str = "") -> Iterator[str]: ...


class LocalStorage:
    """Files under one root directory; writes are atomic renames."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not is_valid_key(key):
            raise ValueError(f"Storage key {key!r} is not a valid key.")
        return self.root / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except OSError as exc:
            raise StorageError("The media store could not save a file.") from exc

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except OSError as exc:
            raise StorageError("The media store could not read a file.") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError("The media store could not delete a file.") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".upload-"):
                yield path.relative_to(self.root).as_posix()


def open_storage(url: str) -> Storage:
    """The backend named by a ``STORAGE_URL``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(unquote(parsed.path))
    raise ValueError(f"STORAGE_URL scheme {parsed.scheme!r} is not supported.")
