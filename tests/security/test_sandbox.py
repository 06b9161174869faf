"""Worker children decode under resource limits, and never start Ghostscript.

The limits are applied by the same function a Celery pool child runs as it
starts (``workers.sandbox``): in a child process here, and in the real worker
of ``image-pipeline serve``, where an image that needs more memory than the
limit ends REJECTED and the next job still completes.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
import zlib
from multiprocessing.connection import Connection
from typing import Any

from app.errors import ImageRejected
from app.imaging import Limits, render
from tests.fuzz.judge import DEFAULT
from tests.images import image_bytes
from tests.imaging.factories import png_chunk
from tests.security.conftest import Served
from tests.service import upload, wait_terminal
from workers.sandbox import MIB, SandboxLimits, limit_child, renew_cpu_budget

HEADROOM = 300 * MIB


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def _allocating_child(conn: Connection) -> None:
    limit_child(SandboxLimits(address_space_bytes=_address_space() + HEADROOM))
    outcomes: list[Any] = []
    try:
        bytearray(2 * 1024 * MIB)
        outcomes.append("allocated")
    except MemoryError:
        outcomes.append("MemoryError")
    try:
        render(big_png(20000, 20000), DEFAULT, Limits(max_pixels=10**9))
        outcomes.append("rendered")
    except ImageRejected as rejection:
        outcomes.append(rejection.code)
    outcomes.append(len(render(image_bytes((64, 48)), DEFAULT).variants))
    conn.send(outcomes)


def _spinning_child(budget: int, renewals: int) -> None:
    limits = SandboxLimits(cpu_seconds=budget)
    limit_child(limits)
    for _ in range(renewals):
        _spin(budget * 0.6)
        renew_cpu_budget(limits)
    _spin(budget * 3)


def _spin(cpu_seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < cpu_seconds:
        pass


def big_png(width: int, height: int) -> bytes:
    """A valid, well-compressed grey PNG of ``width`` x ``height`` pixels."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    idat = b"".join(compressor.compress(row) for _ in range(height))
    idat += compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\0\0\0\0"
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def test_an_allocation_past_the_limit_fails_in_the_child_and_the_parent_survives() -> (
    None
):
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_allocating_child, args=(child_end,))
    child.start()
    assert parent_end.poll(60)
    outcomes = parent_end.recv()
    child.join(10)

    assert outcomes == ["MemoryError", "too_large_to_decode", len(DEFAULT.variants)]
    assert child.exitcode == 0
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY


def test_a_task_over_its_cpu_budget_is_killed_and_the_parent_survives() -> None:
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_spinning_child, args=(1, 0))
    started = time.monotonic()
    child.start()
    child.join(30)

    assert child.exitcode == -signal.SIGXCPU
    assert time.monotonic() - started < 10
    assert resource.getrlimit(resource.RLIMIT_CPU)[0] == resource.RLIM_INFINITY


def test_the_cpu_budget_is_renewed_for_each_task() -> None:
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_spinning_child, args=(1, 3))
    child.start()
    child.join(30)

    # Three tasks of 0.6 s each outlast one budget of 1 s; only the fourth,
    # spinning for 3 s, is killed.
    assert child.exitcode == -signal.SIGXCPU


def test_an_image_too_large_for_the_worker_is_rejected_and_the_worker_goes_on(
    waitress: Served,
) -> None:
    status, body = upload(waitress, big_png(20000, 20000))
    assert status == 202, body
    job = wait_terminal(waitress, body["jobId"], timeout=30)
    assert (job["status"], job["errorCode"], job["attempts"]) == (
        "REJECTED",
        "too_large_to_decode",
        1,
    )

    status, body = upload(waitress, image_bytes((300, 200)))
    assert status == 202
    assert wait_terminal(waitress, body["jobId"], timeout=30)["status"] == "COMPLETE"


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    b"newpath 0 0 moveto 10 10 lineto stroke showpage\n%%EOF\n"
)


def test_no_ghostscript_runs_for_postscript_disguised_as_an_image(
    waitress: Served,
) -> None:
    disguised = {
        "eps-named-png": EPS,
        "binary-eps": b"\xc5\xd0\xd3\xc6" + bytes(26) + EPS,
        "png-magic-then-eps": b"\x89PNG\r\n\x1a\n" + EPS,
    }
    jobs = []
    for data in disguised.values():
        status, body = upload(waitress, data)
        assert status in (202, 415), body
        if status == 202:
            jobs.append(body["jobId"])
    assert jobs, "at least one disguise must reach a worker"
    for job_id in jobs:
        job = wait_terminal(waitress, job_id, timeout=30)
        assert job["status"] == "REJECTED", job

    assert not waitress.gs_record.exists(), waitress.gs_record.read_text()


def test_the_fake_ghostscript_would_have_noticed_a_call(waitress: Served) -> None:
    """The trap works: Pillow's EPS plugin, let loose, does run ``gs``."""
    record = waitress.gs_record.with_name("control-calls.txt")
    script = waitress.gs_record.parent / "bin" / "gs"
    env = os.environ | {
        "PATH": f"{script.parent}{os.pathsep}{os.environ['PATH']}",
    }
    code = (
        "import io, sys\nfrom PIL import Image\n"
        "image = Image.open(io.BytesIO(sys.stdin.buffer.read()))\n"
        "try:\n    image.load()\nexcept Exception:\n    pass\n"
    )
    original = script.read_text()
    script.write_text(original.replace(str(waitress.gs_record), str(record)))
    try:
        subprocess.run(
            [sys.executable, "-c", code], input=EPS, env=env, check=True, timeout=30
        )
    finally:
        script.write_text(original)
    assert record.read_text().startswith("gs ")
