"""The webhook sink against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app.cli import main
from app.config import Settings
from app.extension import ImagePipeline
from app.models import Delivery, DeliveryStatus, utcnow
from app.sinks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from tests.apps import MakeApp, pipeline_of
from tests.images import image_bytes

SECRET = "s3cret-for-tests"


@dataclass
class Receiver:
    """A local HTTP server that records POSTs and answers a scripted status."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/media"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers), body))
            status = state.statuses.pop(0) if state.statuses else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()


@pytest.fixture
def hooked(make_app: MakeApp, receiver: Receiver) -> ImagePipeline:
    sinks = {"*": [{"type": "webhook", "url": receiver.url, "secret": SECRET}]}
    app = make_app(
        sinks_json=json.dumps(sinks), delivery_max_attempts=3, delivery_backoff=0.001
    )
    return pipeline_of(app)


def complete(pipeline: ImagePipeline) -> str:
    job_id = pipeline.submit(image_bytes((400, 300)), "gallery", "5")
    assert pipeline.processor.run(job_id).outcome == "COMPLETE"
    return job_id


def later(pipeline: ImagePipeline, seconds: float) -> None:
    pipeline.deliverer.clock = lambda: utcnow() + timedelta(seconds=seconds)


def the_delivery(pipeline: ImagePipeline) -> Delivery:
    with pipeline.db.transaction() as session:
        [delivery] = session.scalars(select(Delivery)).all()
        return delivery


def test_the_webhook_receives_the_signed_status_json(
    hooked: ImagePipeline, receiver: Receiver
) -> None:
    job_id = complete(hooked)
    assert hooked.deliverer.run_once().delivered == 1
    [(headers, body)] = receiver.received
    record = hooked.get_status(job_id)
    assert record is not None
    assert json.loads(body) == record.to_json()
    assert headers["Content-Type"] == "application/json"
    assert headers[DELIVERY_HEADER] == the_delivery(hooked).id
    assert verify(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])


def test_signatures_fail_for_another_secret_body_or_an_old_timestamp() -> None:
    body = b'{"id": "x"}'
    fresh = str(int(utcnow().timestamp()))
    signature = sign(SECRET, fresh, body)
    assert signature.startswith("v1=")
    assert verify(SECRET, fresh, body, signature)
    assert not verify("other", fresh, body, signature)
    assert not verify(SECRET, fresh, body + b" ", signature)
    stale = str(int(utcnow().timestamp()) - 3600)
    assert not verify(SECRET, stale, body, sign(SECRET, stale, body))


def test_a_failing_webhook_is_retried_with_backoff_then_delivered(
    hooked: ImagePipeline, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    complete(hooked)
    assert hooked.deliverer.run_once().retried == 1
    delivery = the_delivery(hooked)
    assert delivery.last_error == "The webhook answered HTTP 500."
    assert delivery.next_attempt_at > delivery.updated_at
    later(hooked, 10)
    assert hooked.deliverer.run_once().retried == 1
    later(hooked, 20)
    assert hooked.deliverer.run_once().delivered == 1
    assert len(receiver.received) == 3
    delivery = the_delivery(hooked)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 3)


def test_a_webhook_that_keeps_failing_ends_failed_and_can_be_replayed(
    hooked: ImagePipeline, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.statuses = [500, 500, 500]
    complete(hooked)
    for step in range(3):
        later(hooked, 100 * step)
        hooked.deliverer.run_once()
    delivery = the_delivery(hooked)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)

    for f in fields(Settings):
        monkeypatch.setenv(f.metadata["env"], str(getattr(hooked.settings, f.name)))
    result = CliRunner().invoke(main, ["deliveries", "list", "--status", "FAILED"])
    assert result.exit_code == 0, result.output
    assert delivery.id in result.output and "HTTP 500" in result.output
    result = CliRunner().invoke(main, ["deliveries", "replay", delivery.id])
    assert result.exit_code == 0, result.output

    hooked.deliverer.clock = utcnow
    assert hooked.deliverer.run_once().delivered == 1
    assert len(receiver.received) == 4


def test_an_unreachable_webhook_is_a_retry_not_a_crash(make_app: MakeApp) -> None:
    sinks = {"*": [{"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "k"}]}
    pipeline = pipeline_of(make_app(sinks_json=json.dumps(sinks)))
    complete(pipeline)
    assert pipeline.deliverer.run_once().retried == 1
    assert the_delivery(pipeline).last_error == (
        "The webhook could not be reached (ConnectError)."
    )


def test_the_readme_verification_example_accepts_a_real_delivery(
    hooked: ImagePipeline, receiver: Receiver
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("def is_genuine")
    snippet = readme[
        readme.rindex("```python", 0, start) + 9 : readme.index("```", start)
    ]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    complete(hooked)
    hooked.deliverer.run_once()
    [(headers, body)] = receiver.received
    assert namespace["is_genuine"](SECRET, headers, body)
    assert not namespace["is_genuine"]("wrong", headers, body)
