"""The service as real processes, for tests: start, reach, stop.

Tests that run ``image-pipeline serve``, gunicorn or workers as subprocesses
share these: each process in a session of its own (so a stop reaches its
children), a log file per service, plain ``urllib`` for HTTP.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

CONFIG_VARIABLES = ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "STORAGE_URL")
TERMINAL = {"COMPLETE", "REJECTED", "FAILED"}
FAST = {
    "IMAGE_PIPELINE_REAPER_INTERVAL": "2",
    "IMAGE_PIPELINE_PENDING_GRACE": "5",
}


@dataclass
class Service:
    base: str
    processes: list[subprocess.Popen[bytes]]
    logs: Path
    heavy_metrics_port: int = 0
    s3_endpoint: str = ""

    def url(self, path: str) -> str:
        return self.base + path if path.startswith("/") else path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    command: list[str], env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def wait_until_up(service: Service, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = http(
                "GET", service.url(f"/image-pipeline/status/{uuid.uuid4()}")
            )
            if status == 404:
                return
        except OSError:
            pass
        for process in service.processes:
            assert process.poll() is None, service.logs.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError("service did not start:\n" + service.logs.read_text()[-3000:])


def upload(
    service: Service, data: bytes, source_type: str = "gallery"
) -> tuple[int, dict[str, Any]]:
    boundary, payload = encode_multipart(
        {
            "file": FileStorage(io.BytesIO(data), filename="upload.jpg"),
            "sourceType": source_type,
            "sourceId": "e2e",
        }
    )
    status, body, _ = http(
        "POST",
        service.url("/image-pipeline/upload"),
        payload,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    return status, json.loads(body)


def wait_terminal(service: Service, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = http("GET", service.url(f"/image-pipeline/status/{job_id}"))
        assert status == 200
        job: dict[str, Any] = json.loads(body)
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.1)
    raise AssertionError(
        f"job {job_id} not terminal in {timeout} s:\n"
        + service.logs.read_text()[-4000:]
    )


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(FAST)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env
