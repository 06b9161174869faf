"""Files under one root directory: the embedded mode's store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.errors import StorageError
from app.storage.keys import check_key

TEMP_PREFIX = ".upload-"


@dataclass(frozen=True)
class Stored:
    """A stored object's key and when it was last written (UTC)."""

    key: str
    modified: datetime


class LocalStorage:
    """Files under one root directory; writes are atomic renames.

    The disk keeps no content type or cache header: ``GET /files`` derives
    both from the key when it serves a variant.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
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
        for path in self._files(prefix):
            yield path.relative_to(self.root).as_posix()

    def listing(self, prefix: str = "") -> Iterator[Stored]:
        for path in self._files(prefix):
            try:
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except OSError:
                continue  # removed since it was listed
            yield Stored(path.relative_to(self.root).as_posix(), modified)

    def _files(self, prefix: str) -> Iterator[Path]:
        base = self.root / check_key(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(TEMP_PREFIX):
                yield path

    def check(self) -> None:
        """The root exists (or can be made) and this process may write to it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError("The media directory cannot be created.") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"The media directory {self.root} is not writable.")
