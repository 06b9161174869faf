"""Limits on the wire: how much of a request is read, how, and for how long.

- Size: the upload route refuses a body over the upload limit with 413 from
  its declared ``Content-Length``, before reading it (``app.api``); a chunked
  body is cut off at the limit while it streams. Under waitress the server
  itself refuses it (:func:`waitress_options`), since waitress reads a whole
  body before the application sees the request.
- Shape: a multipart body may have at most :data:`MAX_FORM_PARTS` parts and
  text fields of at most :data:`MAX_FORM_MEMORY_SIZE` bytes; more is 413. File
  parts are spooled to a temporary file past 500 KiB (werkzeug's default), so
  an upload is never held in memory twice.
- Time: a body must arrive within ``IMAGE_PIPELINE_REQUEST_TIMEOUT``. gunicorn
  hands a request to a thread as soon as its headers are in, so a client
  trickling its body (a slow loris) would hold that thread; :class:`BodyDeadline`
  closes such a connection. Under waitress, which buffers bodies without
  holding a thread, the same setting is the idle timeout of a connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any

from flask import Flask, request
from werkzeug.exceptions import RequestTimeout

from app.config import Settings

log = logging.getLogger(__name__)

MAX_FORM_PARTS = 16
"""An upload has three to five parts (file, owner, focal point)."""
MAX_FORM_MEMORY_SIZE = 512 * 1024
"""Largest text field of a multipart body.

werkzeug also applies it to what its decoder buffers at once, which is one
read of 64 KiB plus what is left of the previous one, so it must stay well
above that or every file larger than one read is refused.
"""
MULTIPART_OVERHEAD = 64 * 1024
"""Room for boundaries and text fields on top of the largest file."""

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def max_body_bytes(settings: Settings) -> int:
    """The largest request body the API reads: an upload and its form fields."""
    return settings.max_upload_bytes + MULTIPART_OVERHEAD


def init_app(app: Flask, settings: Settings) -> None:
    """Bound the size, the shape and the arrival time of request bodies."""
    app.before_request(_limit_form)
    if settings.request_timeout > 0:
        app.wsgi_app = BodyDeadline(  # type: ignore[method-assign]
            app.wsgi_app, settings.request_timeout
        )


def _limit_form() -> None:
    request.max_form_parts = MAX_FORM_PARTS
    request.max_form_memory_size = MAX_FORM_MEMORY_SIZE


def waitress_options(settings: Settings) -> dict[str, Any]:
    """waitress settings that apply the same limits as the application."""
    timeout = settings.request_timeout or 120.0
    return {
        "max_request_body_size": max_body_bytes(settings),
        "channel_timeout": timeout,
        "cleanup_interval": max(1.0, min(30.0, timeout / 2)),
    }


class BodyDeadline:
    """WSGI middleware: a request body that is not in within ``seconds`` is cut.

    When the deadline passes while the body is still being read, the client's
    socket is shut down, which ends the blocked read at once; the request
    then fails with 408 and the thread is free again. The deadline stops as
    soon as the whole body has been read, so slow work after it is not cut.
    Only servers that name the socket (gunicorn) need or get this.
    """

    def __init__(self, app: WsgiApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, socket.socket) or not _may_have_body(environ):
            return self.app(environ, start_response)
        watch = _Deadline(sock, self.seconds)
        environ["wsgi.input"] = _WatchedInput(
            environ["wsgi.input"], watch, _content_length(environ)
        )
        try:
            return self.app(environ, start_response)
        finally:
            watch.stop()


class _Deadline:
    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock = sock
        self.seconds = seconds
        self.expired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()

    def _cut(self) -> None:
        self.expired = True
        log.info("request body not received within %g s; closing", self.seconds)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class _WatchedInput:
    """The request body stream, which stops the deadline once it is read."""

    def __init__(self, stream: IO[bytes], deadline: _Deadline, length: int | None):
        self._stream = stream
        self._deadline = deadline
        self._left = length

    def read(self, size: int = -1) -> bytes:
        return self._counted(self._guarded(self._stream.read, size))

    def readline(self, size: int = -1) -> bytes:
        return self._counted(self._guarded(self._stream.readline, size))

    def _guarded(self, read: Callable[[int], bytes], size: int) -> bytes:
        try:
            data = read(size)
        except Exception as exc:
            if self._deadline.expired:
                raise RequestTimeout() from exc
            raise
        if self._deadline.expired:
            raise RequestTimeout()
        return data

    def _counted(self, data: bytes) -> bytes:
        if self._left is not None:
            self._left -= len(data)
        if not data or (self._left is not None and self._left <= 0):
            self._deadline.stop()
        return data

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


def _may_have_body(environ: dict[str, Any]) -> bool:
    return bool(
        environ.get("CONTENT_LENGTH", "0") not in ("", "0")
        or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    )


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
