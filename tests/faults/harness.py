"""Real servers and real service processes for the fault tests.

:class:`PostgresCluster` and :class:`RedisServer` are throwaway servers that
the tests own, so stopping or restarting them disturbs nobody else on the
machine. :class:`Stack` is one deployment on them (a database of its own,
gunicorn, Celery workers, beat) with the probes the scenarios need: uploads,
status reads, the rows, the worker children, and a :class:`Monitor` that
records every status a job goes through.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.db import Database
from app.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = frozenset({"COMPLETE", "REJECTED", "FAILED"})
QUEUE = "image-pipeline"

TIMINGS = {
    "IMAGE_PIPELINE_SOFT_TIME_LIMIT": "3",
    "IMAGE_PIPELINE_HARD_TIME_LIMIT": "3.5",
    "IMAGE_PIPELINE_LEASE": "4",
    "IMAGE_PIPELINE_LEASE_RENEW": "0.5",
    "IMAGE_PIPELINE_REAPER_INTERVAL": "0.5",
    "IMAGE_PIPELINE_PENDING_GRACE": "1.5",
    "IMAGE_PIPELINE_VISIBILITY_TIMEOUT": "8",
    "IMAGE_PIPELINE_RETRY_BACKOFF": "0.2",
    "IMAGE_PIPELINE_RETRY_BACKOFF_MAX": "1",
    "IMAGE_PIPELINE_DISPATCH_TIMEOUT": "0.5",
}
"""Short but consistent timings: every relation of ``app.config`` holds."""

UNLIMITED = {
    "IMAGE_PIPELINE_UPLOAD_RATE": "0",
    "IMAGE_PIPELINE_UPLOAD_RATE_PER_ADDRESS": "0",
    "IMAGE_PIPELINE_MAX_ACTIVE_JOBS": "0",
}
"""Every upload here comes from one address: quotas would refuse the load."""

LEASE = float(TIMINGS["IMAGE_PIPELINE_LEASE"])
REAPER_INTERVAL = float(TIMINGS["IMAGE_PIPELINE_REAPER_INTERVAL"])
VISIBILITY = float(TIMINGS["IMAGE_PIPELINE_VISIBILITY_TIMEOUT"])
RECOVERY = LEASE + REAPER_INTERVAL + 2.0
"""Lease + reaper interval + processing (with room for a loaded machine)."""


def report(scenario: str, **figures: object) -> None:
    """Append a scenario's measured figures to ``$IMAGE_PIPELINE_FAULTS_REPORT``."""
    path = os.environ.get("IMAGE_PIPELINE_FAULTS_REPORT")
    if path:
        with open(path, "a") as sink:
            sink.write(json.dumps({"scenario": scenario, **figures}) + "\n")


@functools.cache
def slow_image() -> bytes:
    """A 12-megapixel PNG: long enough to render that a fault lands mid-job."""
    from tests.images import image_bytes

    return image_bytes((4000, 3000), "PNG")


@functools.cache
def small_image(shade: int = 0) -> bytes:
    from tests.images import image_bytes

    return image_bytes((400, 300), color=(200, shade % 256, 40))


@functools.cache
def tiny_photo(seed: int) -> bytes:
    """A 200x150 JPEG with some texture: quick to render, so load is cheap."""
    from PIL import Image, ImageDraw

    image = Image.effect_noise((200, 150), 40).convert("RGB")
    draw = ImageDraw.Draw(image)
    shade = (seed * 37) % 256
    draw.rectangle((20, 20, 120, 100), fill=(shade, 255 - shade, 90))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def binary(name: str) -> str:
    """A server binary; the fault suite fails (never skips) without it."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
        None,
    )
    assert found, f"{name} is not installed; the fault tests need it on PATH."
    return found


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory, on a port of its own.

    As root, the cluster belongs to the ``postgres`` account, since initdb
    refuses to run as root.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="image-pipeline-faults-pg-"))
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.home, "postgres", "postgres")
        self._run(
            binary("initdb"),
            *("-D", str(self.data), "-A", "trust", "-U", "postgres"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        )

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as, *command], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.home} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"faults_{uuid.uuid4().hex[:10]}"
        admin = create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = self.url(name)
        db = Database(url.replace("postgresql://", "postgresql+psycopg://"))
        upgrade(db)
        db.dispose()
        return url

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)


class RedisServer:
    """A redis-server child without persistence: a restart comes back empty."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.log = home / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            binary("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink)
        wait_for(lambda: port_open(self.port), 10, "redis-server to listen")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        wait_for(lambda: not port_open(self.port), 5, "redis-server to stop")

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2)


@dataclass
class Process:
    """One service process and its log."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            assert self.popen.poll() is None or re.search(pattern, self.text()), (
                f"{self.name} exited:\n{self.text()[-3000:]}"
            )
            return re.search(pattern, self.text())

        match: re.Match[str] = wait_for(found, timeout, f"{pattern!r} in {self.name}")
        return match

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except FileNotFoundError:
            return []

    def signal_group(self, signum: int) -> None:
        os.killpg(self.pid, signum)

    def stop(self) -> None:
        """Kill the process and its pool children: the stack is thrown away."""
        with contextlib.suppress(ProcessLookupError):
            self.signal_group(signal.SIGKILL)
        self.popen.wait()


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    seconds: float


def http(method: str, url: str, body: bytes | None = None, **headers: str) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    elapsed = time.monotonic() - started
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {"raw": raw[:200].decode(errors="replace")}
    return Response(status, parsed, elapsed)


def multipart(data: bytes, source_type: str, source_id: str) -> tuple[bytes, str]:
    boundary, payload = encode_multipart(
        {
            "file": FileStorage(io.BytesIO(data), filename="photo.jpg"),
            "sourceType": source_type,
            "sourceId": source_id,
        }
    )
    return payload, f"multipart/form-data; boundary={boundary}"


class Stack:
    """One deployment: a database, a Redis, storage and the service processes."""

    def __init__(
        self,
        home: Path,
        database_url: str,
        redis: RedisServer,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.redis = redis
        self.database_url = database_url
        self.storage = home / "storage"
        self.env = _child_env(
            {
                **TIMINGS,
                **UNLIMITED,
                "DATABASE_URL": database_url,
                "REDIS_URL": redis.url,
                "STORAGE_URL": self.storage.as_uri(),
                "IMAGE_PIPELINE_DATA_DIR": str(home / "data"),
                **(settings or {}),
            }
        )
        self.max_attempts = int(self.env.get("IMAGE_PIPELINE_MAX_ATTEMPTS", "5"))
        self.engine: Engine = create_engine(
            database_url.replace("postgresql://", "postgresql+psycopg://"),
            poolclass=NullPool,  # nothing left open when the server restarts
            connect_args={"connect_timeout": 2},
        )
        self.processes: list[Process] = []
        self.web_port = 0
        self.monitor = Monitor(self)

    # Processes.

    def spawn(self, name: str, command: list[str], **env: str) -> Process:
        log = self.home / f"{name}.log"
        with log.open("ab") as sink:
            popen = subprocess.Popen(
                command,
                env={**self.env, **env},
                cwd=self.home,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def start_web(self) -> Process:
        self.web_port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.web_port}",
            "--workers",
            "1",
            "--threads",
            "16",
            "--timeout",
            "30",
            "app:create_app()",
        ]
        return self.spawn("web", command)

    def start_worker(
        self, name: str, concurrency: int = 1, queues: str | None = None
    ) -> Process:
        command = [sys.executable, "-m", "app", "worker", "-c", str(concurrency)]
        if queues:
            command.append(f"--queues={queues}")
        return self.spawn(name, command)

    def start_beat(self, name: str = "beat", **env: str) -> Process:
        return self.spawn(name, [sys.executable, "-m", "app", "beat"], **env)

    def wait_ready(self, *processes: Process, timeout: float = 30) -> None:
        for process in processes:
            if process.name == "web" or process.name.startswith("web"):
                try:
                    wait_for(self._web_answers, timeout, "gunicorn to answer")
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n{self.logs()}") from None
            elif "beat" in process.name:
                process.wait_log(r"beat: Starting", timeout)
            else:
                process.wait_log(r"celery@\S+ ready", timeout)

    def _web_answers(self) -> bool:
        try:
            return self.status(str(uuid.uuid4())).status == 404
        except OSError:
            return False

    def logs(self) -> str:
        return "\n".join(f"----- {p.name}\n{p.text()[-2500:]}" for p in self.processes)

    def close(self) -> None:
        self.monitor.stop()
        for process in reversed(self.processes):
            process.stop()
        self.engine.dispose()

    # The HTTP API.

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}/image-pipeline{path}"

    def upload(
        self, data: bytes, source_type: str = "gallery", source_id: str = "faults"
    ) -> Response:
        body, content_type = multipart(data, source_type, source_id)
        return http("POST", self.url("/upload"), body, **{"Content-Type": content_type})

    def submit(self, data: bytes, source_type: str = "gallery") -> str:
        answer = self.upload(data, source_type)
        assert answer.status == 202, answer
        job_id: str = answer.body["jobId"]
        self.monitor.watch(job_id)
        return job_id

    def status(self, job_id: str) -> Response:
        return http("GET", self.url(f"/status/{job_id}"))

    # The database's view.

    def rows(self, job_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        query = "SELECT id, status, attempts, error_code, lease_token FROM media_queue"
        with self.engine.connect() as conn:
            result = conn.execute(text(query)).mappings().all()
        wanted = None if job_ids is None else set(job_ids)
        return {
            row["id"]: dict(row)
            for row in result
            if wanted is None or row["id"] in wanted
        }

    def row(self, job_id: str) -> dict[str, Any]:
        return self.rows([job_id])[job_id]

    def media_counts(self) -> dict[str, int]:
        query = "SELECT job_id, count(*) AS n FROM media GROUP BY job_id"
        with self.engine.connect() as conn:
            return {r.job_id: r.n for r in conn.execute(text(query))}

    def unique_columns(self, table: str) -> set[str]:
        """Columns that a single-column unique index or constraint covers."""
        query = text(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = CAST(:table AS regclass) AND i.indisunique "
            "AND i.indnatts = 1"
        )
        with self.engine.connect() as conn:
            return set(conn.execute(query, {"table": table}).scalars())

    def media_variants(self, job_id: str) -> dict[str, Any]:
        query = text("SELECT variants FROM media WHERE job_id = :job")
        with self.engine.connect() as conn:
            variants = conn.execute(query, {"job": job_id}).scalar_one()
        return variants if isinstance(variants, dict) else json.loads(variants)

    def wait_status(
        self, job_id: str, statuses: Iterable[str], timeout: float
    ) -> dict[str, Any]:
        wanted = set(statuses)

        def reached() -> dict[str, Any] | None:
            row = self.rows([job_id]).get(job_id)
            return row if row and row["status"] in wanted else None

        try:
            row: dict[str, Any] = wait_for(reached, timeout, f"{job_id} in {wanted}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None
        return row

    def wait_terminal(self, job_ids: Iterable[str], timeout: float) -> None:
        ids = set(job_ids)

        def done() -> bool:
            rows = self.rows(ids)
            return all(rows[i]["status"] in TERMINAL for i in ids)

        try:
            wait_for(done, timeout, f"{len(ids)} jobs to be terminal", every=0.1)
        except AssertionError as exc:
            left = {i: r["status"] for i, r in self.rows(ids).items()}
            left = {i: s for i, s in left.items() if s not in TERMINAL}
            raise AssertionError(f"{exc}: {left}\n{self.logs()}") from None

    def queue_length(self) -> int:
        length: int = self.redis.client().llen(QUEUE)
        return length

    def send_task(self, job_id: str) -> None:
        """Publish one more ``process`` task for ``job_id``, as a duplicate would."""
        from celery import Celery

        client = Celery("faults", broker=self.redis.url)
        client.conf.broker_connection_retry_on_startup = True
        try:
            client.send_task("image_pipeline.process", args=[job_id], queue=QUEUE)
        finally:
            client.close()

    def assert_invariants(self, job_ids: Iterable[str]) -> None:
        """RELIABILITY.md's invariants over ``job_ids``, then a canary job."""
        ids = set(job_ids)
        rows = self.rows(ids)
        assert set(rows) == ids, "a job row disappeared"
        media = self.media_counts()
        for job_id, row in rows.items():
            assert row["status"] in TERMINAL, (job_id, row)
            assert row["attempts"] <= self.max_attempts, (job_id, row)
            expected = 1 if row["status"] == "COMPLETE" else 0
            assert media.get(job_id, 0) == expected, (job_id, row, media.get(job_id))
            if expected:
                for variant in self.media_variants(job_id).values():
                    assert (self.storage / variant["key"]).is_file(), variant
        self.monitor.check()
        self.canary()

    def canary(self, timeout: float = 15) -> None:
        from tests.images import image_bytes

        job_id = self.submit(image_bytes((320, 240), color=(10, 120, 60)))
        row = self.wait_status(job_id, TERMINAL, timeout)
        assert row["status"] == "COMPLETE", row


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    prefixes = ("IMAGE_PIPELINE_", "DATABASE_URL", "REDIS_URL", "BROKER_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.pop("STORAGE_URL", None)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class Monitor:
    """Polls the rows and the status route; records what it saw.

    Terminal states must never change and attempts never pass the cap; the
    status route must not answer 5xx unless the test declared the database
    down (``db_down``).
    """

    stack: Stack
    every: float = 0.1
    history: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    status_codes: list[tuple[int, float]] = field(default_factory=list)
    db_down: bool = False
    _watched: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, job_id: str) -> None:
        self._watched.append(job_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def check(self) -> None:
        self.sample()
        assert not self.problems, self.problems

    def _run(self) -> None:
        turn = 0
        while not self._stop.wait(self.every):
            try:
                self.sample()
            except Exception:  # the database may be down on purpose
                if not self.db_down:
                    time.sleep(0.2)
            turn += 1
            self._probe(self._watched[turn % len(self._watched)])

    def sample(self) -> None:
        for job_id, row in self.stack.rows().items():
            seen = self.history.setdefault(job_id, [])
            state = (row["status"], row["attempts"])
            if seen and seen[-1] == state:
                continue
            if seen and seen[-1][0] in TERMINAL:
                self.problems.append(f"{job_id} left {seen[-1][0]} for {state}")
            if row["attempts"] > self.stack.max_attempts:
                self.problems.append(f"{job_id} has {row['attempts']} attempts")
            seen.append(state)

    def _probe(self, job_id: str) -> None:
        down = self.db_down
        try:
            answer = self.stack.status(job_id)
        except OSError as exc:
            self.problems.append(f"status route unreachable: {exc}")
            return
        self.status_codes.append((answer.status, answer.seconds))
        if answer.status >= 500 and not (down or self.db_down):
            self.problems.append(f"status {job_id} answered {answer.status}")
