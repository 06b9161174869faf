"""Limits on the wire, against real servers: gunicorn as the Procfile runs it
and waitress as ``image-pipeline serve`` runs it.

A body far over the limit is refused before it is read, with the servers'
memory flat; so is a chunked body, while it streams; a multipart body of
thousands of parts is refused at once; and a client that sends its body
too slowly is cut off while other requests are served.
"""

from __future__ import annotations

import io
import select
import socket
import threading
import time
import uuid
from urllib.parse import urlparse

from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.images import image_bytes
from tests.security.conftest import MAX_BYTES, REQUEST_TIMEOUT, Served
from tests.service import http, upload

BOUNDARY = "fuzzboundary"
UPLOAD_PATH = "/image-pipeline/upload"
STEP = 64 * 1024


def connect(server: Served) -> socket.socket:
    address = urlparse(server.base)
    sock = socket.socket()
    # Small buffers, so that what was sent is close to what the server took.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STEP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(5)
    sock.connect((address.hostname, address.port))
    return sock


def request_head(headers: dict[str, str]) -> bytes:
    lines = [f"POST {UPLOAD_PATH} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def multipart_head() -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode() + image_bytes((64, 64))


def read_status(sock: socket.socket, timeout: float) -> int | None:
    """The status code of the answer, or ``None`` if the server closed silently."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return int(data.split()[1]) if data.startswith(b"HTTP/1.") else None


def warm_up(server: Served) -> None:
    """Load every lazily imported module, so that memory compares fairly."""
    for _ in range(2):
        upload(server, image_bytes((32, 32)))
        http("GET", server.url(f"/image-pipeline/status/{uuid.uuid4()}"))


def test_a_body_ten_times_the_limit_is_refused_before_it_is_read(
    server: Served,
) -> None:
    warm_up(server)
    before = server.rss_kib()
    declared = 10 * MAX_BYTES
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(
            request_head(
                {
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    "Content-Length": str(declared),
                }
            )
        )
        sock.sendall(multipart_head())
        status = read_status(sock, timeout=5)
        elapsed = time.monotonic() - started

    assert status == 413
    assert elapsed < 1.0, f"{server.name}: 413 after {elapsed:.2f} s"
    assert server.rss_kib() - before < declared // 1024 // 10


def test_a_chunked_body_over_the_limit_is_cut_off_while_it_streams(
    server: Served,
) -> None:
    warm_up(server)
    before = server.rss_kib()
    sent = 0
    status = None
    with connect(server) as sock:
        sock.sendall(
            request_head(
                {
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    "Transfer-Encoding": "chunked",
                }
            )
        )
        payload = multipart_head() + bytes(20 * MAX_BYTES)
        try:
            while sent < len(payload):
                piece = payload[sent : sent + STEP]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
                if select.select([sock], [], [], 0)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        status = read_status(sock, timeout=5)

    assert status == 413, f"{server.name}: {status} after {sent} bytes"
    assert sent < 4 * MAX_BYTES
    assert server.rss_kib() - before < 2 * MAX_BYTES // 1024


def test_a_multipart_body_of_thousands_of_parts_is_refused_quickly(
    server: Served,
) -> None:
    fields = {f"field{index}": "x" for index in range(5000)}
    fields.update(sourceType="gallery", sourceId="parts")
    fields["file"] = FileStorage(stream=_image_stream(), filename="a.jpg")
    boundary, body = encode_multipart(fields)
    assert len(body) < MAX_BYTES

    started = time.monotonic()
    status, _, _ = http(
        "POST",
        server.url(UPLOAD_PATH),
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )

    assert status == 413
    assert time.monotonic() - started < 1.0


def test_a_slow_body_is_cut_off_while_other_requests_are_served(
    server: Served,
) -> None:
    closed_after: list[float] = []
    # gunicorn gives each request a thread: a trickle must be cut. waitress
    # reads bodies without a thread, and closes connections that go idle.
    pause = 0.2 if server.name == "gunicorn" else 60.0

    def loris() -> None:
        with connect(server) as sock:
            started = time.monotonic()
            sock.sendall(
                request_head(
                    {
                        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                        "Content-Length": str(MAX_BYTES // 2),
                    }
                )
            )
            closed_after.append(_trickle_until_closed(sock, started, pause))

    lorises = [threading.Thread(target=loris) for _ in range(3)]
    for thread in lorises:
        thread.start()
    time.sleep(0.5)
    served_in = []
    while any(thread.is_alive() for thread in lorises):
        started = time.monotonic()
        status, _, _ = http("GET", server.url(f"/image-pipeline/status/{uuid.uuid4()}"))
        assert status == 404
        served_in.append(time.monotonic() - started)
        time.sleep(0.2)
    for thread in lorises:
        thread.join()

    bound = REQUEST_TIMEOUT + 2.5
    assert len(closed_after) == 3
    assert max(closed_after) < bound, f"{server.name}: closed after {closed_after}"
    assert served_in and max(served_in) < 1.0


def _trickle_until_closed(sock: socket.socket, started: float, pause: float) -> float:
    """Send a byte of body every ``pause`` seconds until the server closes the
    connection; returns the seconds that took."""
    deadline = started + 20
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"x")
            sock.settimeout(min(pause, deadline - time.monotonic()))
            if sock.recv(4096) == b"":
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    return time.monotonic() - started


def _image_stream() -> io.BytesIO:
    return io.BytesIO(image_bytes((16, 16)))
