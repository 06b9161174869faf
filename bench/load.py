"""Load the whole service and check that no job is lost or done twice.

    python bench/load.py [--uploads 500] [--clients 32] [--workers 2]
                         [--pollers 32] [--poll-every 1.0]

Starts a throwaway PostgreSQL and Redis, gunicorn and the Celery workers
(as the fault tests do, on loopback only), uploads generated 1600x1200
photos from concurrent clients while pollers read the status route (each
once per ``--poll-every`` seconds, as a client waiting for its job would), waits
for every job to end, and prints a Markdown report: uploads accepted, jobs
complete, lost and duplicated (both must be 0), upload and status latency
percentiles, images per second, and the throughput of ``image-pipeline
process`` on the same files in the same run, for comparison.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from tests.faults.harness import (  # noqa: E402
    TERMINAL,
    TIMINGS,
    PostgresCluster,
    RedisServer,
    Stack,
)

DISTINCT = 24
"""Different photos generated; the uploads cycle through them."""
DEADLINE = 600.0
"""Longest the run waits for its jobs, seconds."""


def photo(seed: int) -> bytes:
    """A 1600x1200 JPEG with a photo's entropy: shapes, gradient and grain."""
    rng = random.Random(seed)
    base = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
    draw = ImageDraw.Draw(base)
    for _ in range(40):
        x, y = rng.randrange(1600), rng.randrange(1200)
        r = rng.randrange(20, 300)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    grain = Image.effect_noise((1600, 1200), 24).convert("RGB")
    image = Image.blend(base, grain, 0.25)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100)
    return " / ".join(f"{cuts[p - 1] * 1000:.0f}" for p in (50, 95, 99))


class StatusPoller:
    """Clients that read the status of accepted jobs, each once per ``every`` s."""

    def __init__(self, stack: Stack, clients: int, every: float) -> None:
        self.stack = stack
        self.every = every
        self.jobs: list[str] = []
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        rng = random.Random()
        while not self._stop.wait(self.every):
            if not self.jobs:
                continue
            answer = self.stack.status(rng.choice(self.jobs))
            self.latencies.append(answer.seconds)
            self.errors += answer.status != 200


def run_service(stack: Stack, files: list[bytes], args: argparse.Namespace) -> dict:
    processes = [stack.start_web()]
    processes += [stack.start_worker(f"worker-{n}", 1) for n in range(args.workers)]
    stack.wait_ready(*processes)
    poller = StatusPoller(stack, args.pollers, args.poll_every)
    poller.start()

    def upload(n: int) -> tuple[int, float, str | None]:
        answer = stack.upload(files[n % len(files)], "gallery", f"load-{n}")
        job = answer.body.get("jobId") if answer.status == 202 else None
        if job:
            poller.jobs.append(job)
        return answer.status, answer.seconds, job

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        results = list(pool.map(upload, range(args.uploads)))
    uploaded = time.monotonic()
    jobs = [job for _, _, job in results if job]
    deadline = started + DEADLINE
    while time.monotonic() < deadline:
        rows = stack.rows(jobs)
        if all(row["status"] in TERMINAL for row in rows.values()):
            break
        time.sleep(0.2)
    finished = time.monotonic()
    poller.stop()

    rows = stack.rows(jobs)
    media = stack.media_counts()
    statuses = [row["status"] for row in rows.values()]
    return {
        "accepted": len(jobs),
        "refused": len(results) - len(jobs),
        "complete": statuses.count("COMPLETE"),
        "other terminal": sum(s in TERMINAL and s != "COMPLETE" for s in statuses),
        "lost": len(jobs) - sum(s in TERMINAL for s in statuses),
        "duplicates": sum(max(media.get(job, 0) - 1, 0) for job in jobs),
        "multi-attempt": sum(row["attempts"] > 1 for row in rows.values()),
        "upload ms p50/p95/p99": percentiles([seconds for _, seconds, _ in results]),
        "status ms p50/p95/p99": percentiles(poller.latencies),
        "status reads": len(poller.latencies),
        "status errors": poller.errors,
        "upload phase s": round(uploaded - started, 1),
        "seconds": finished - started,
    }


def run_cli(files: list[Path], out: Path, processes: int) -> float:
    """Seconds for ``image-pipeline process`` over ``files`` in N processes."""
    shares = [files[n::processes] for n in range(processes)]
    started = time.monotonic()
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "process", "--out", str(out / str(n))]
            + [str(f) for f in share],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for n, share in enumerate(shares)
    ]
    for child in children:
        assert child.wait() == 0, "image-pipeline process failed"
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--pollers", type=int, default=32)
    parser.add_argument(
        "--poll-every",
        type=float,
        default=1.0,
        help="Seconds between one poller's status reads; a poller stands for "
        "a client waiting for its job.",
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not 1 <= args.uploads <= 5000:
        parser.error("--uploads must be between 1 and 5000")

    home = Path(tempfile.mkdtemp(prefix="image-pipeline-load-"))
    files = [photo(seed) for seed in range(DISTINCT)]
    postgres = PostgresCluster()
    redis = RedisServer(home)
    production = {name: "" for name in TIMINGS}  # the defaults of app.config
    try:
        postgres.start()
        redis.start()
        stack = Stack(home, postgres.create_database(), redis, production)
        try:
            service = run_service(stack, files, args)
        finally:
            stack.close()
    finally:
        redis.kill()
        postgres.destroy()

    paths = []
    for n in range(args.uploads):
        path = home / "files" / f"{n}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(files[n % len(files)])
        paths.append(path)
    cli_seconds = run_cli(paths, home / "out", args.workers)

    seconds = service.pop("seconds")
    rate = service["complete"] / seconds
    cli_rate = len(paths) / cli_seconds
    print(
        f"## Load: {args.uploads} uploads of 1600x1200 JPEG, {args.clients} "
        f"clients, {args.pollers} pollers reading every {args.poll_every} s"
    )
    print()
    print("| measure | value |")
    print("|---|---|")
    for name, value in service.items():
        print(f"| {name} | {value} |")
    print(f"| images per second (service, {args.workers} workers) | {rate:.1f} |")
    print(
        f"| images per second (`image-pipeline process`, {args.workers} "
        f"processes) | {cli_rate:.1f} |"
    )
    print(f"| service / process throughput | {rate / cli_rate:.2f} |")
    if service["lost"] or service["duplicates"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
