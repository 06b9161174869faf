"""Real servers for the security tests, on loopback, with small limits.

``waitress`` is ``image-pipeline serve`` (waitress, a Celery worker and beat
in child processes); ``gunicorn`` runs the Procfile's ``web`` command. Both
read a 1 MiB upload limit and a 2 s request timeout, and find a fake ``gs``
first on their PATH that records every call to it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service import (
    Service,
    child_env,
    free_port,
    start,
    stop,
    wait_until_up,
)

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 1024 * 1024
REQUEST_TIMEOUT = 2.0
LIMITS = {
    "IMAGE_PIPELINE_MAX_BYTES": str(MAX_BYTES),
    "IMAGE_PIPELINE_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
    "IMAGE_PIPELINE_WORKER_MAX_ADDRESS_SPACE_MB": "512",
    "IMAGE_PIPELINE_MAX_PIXELS": "400000000",
    "IMAGE_PIPELINE_WORKER_CONCURRENCY": "1",
}
FAKE_GS = """#!/bin/sh
echo "gs $*" >> "{record}"
exit 1
"""


def fake_ghostscript(directory: Path) -> tuple[Path, Path]:
    """A ``gs`` that records its calls; returns (its directory, the record)."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    record = directory / "gs-calls.txt"
    script = bin_dir / "gs"
    script.write_text(FAKE_GS.format(record=record))
    script.chmod(0o755)
    return bin_dir, record


def server_env(cwd: Path, bin_dir: Path) -> dict[str, str]:
    env = child_env(LIMITS)
    env["IMAGE_PIPELINE_DATA_DIR"] = str(cwd / "data")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Served(Service):
    name: str = ""
    gs_record: Path = Path()

    def rss_kib(self) -> int:
        """Resident memory of the server and every process it started."""
        group = self.processes[0].pid
        total = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                total += _rss_in_group(entry, group)
        return total


def _rss_in_group(proc: Path, group: int) -> int:
    try:
        if os.getpgid(int(proc.name)) != group:
            return 0
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@pytest.fixture(scope="package")
def waitress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cwd = tmp_path_factory.mktemp("waitress")
    bin_dir, record = fake_ghostscript(cwd)
    port = free_port()
    logs = cwd / "serve.log"
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    process = start(command, server_env(cwd, bin_dir), cwd, logs)
    base = f"http://127.0.0.1:{port}"
    served = Served(base, [process], logs, name="waitress", gs_record=record)
    try:
        wait_until_up(served)
        yield served
    finally:
        stop([process])


def procfile_web(port: int) -> list[str]:
    """The Procfile's ``web`` command, bound to loopback on ``port``."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.removeprefix("web:").strip()
            command = command.replace("${WEB_CONCURRENCY:-2}", "2")
            command = command.replace("0.0.0.0:$PORT", f"127.0.0.1:{port}")
            return [sys.executable, "-m", *shlex.split(command)]
    raise AssertionError("The Procfile has no web process.")


@pytest.fixture(scope="package")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cwd = tmp_path_factory.mktemp("gunicorn")
    bin_dir, record = fake_ghostscript(cwd)
    env = server_env(cwd, bin_dir)
    subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
    )
    port = free_port()
    logs = cwd / "gunicorn.log"
    process = start(procfile_web(port), env, cwd, logs)
    base = f"http://127.0.0.1:{port}"
    served = Served(base, [process], logs, name="gunicorn", gs_record=record)
    try:
        wait_until_up(served)
        yield served
    finally:
        stop([process])


@pytest.fixture(params=["waitress", "gunicorn"])
def server(request: pytest.FixtureRequest) -> Served:
    served: Served = request.getfixturevalue(request.param)
    return served
