"""A running embedded service and a headless Chromium for the page tests.

The browser is Debian's ``chromium`` package, driven by Playwright; the run
fails, rather than skips, on a machine without it (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.service import (
    Service,
    child_env,
    free_port,
    start,
    stop,
    wait_until_up,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SHUTDOWN_GRACE = 5.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``image-pipeline serve`` as a real process, data in a temporary directory."""
    cwd = tmp_path_factory.mktemp("demo")
    logs = cwd / "serve.log"
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    process = start(command, child_env({}), cwd, logs)
    running = Service(f"http://127.0.0.1:{port}", [process], logs)
    try:
        wait_until_up(running)
        yield running
    finally:
        stop([process])
        end_session(process.pid)


def end_session(group: int) -> None:
    """Kill what is left of the service's process group after the grace time.

    ``serve`` runs its worker as a child in the same group; a worker that
    hangs on its way down must not outlive the test run.
    """
    deadline = time.monotonic() + SHUTDOWN_GRACE
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.is_file(), (
        f"{CHROMIUM} is missing: install Debian's chromium package "
        "(apt-get install -y chromium) to run the browser tests."
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go; kept after the run for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
