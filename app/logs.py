"""Log output: human-readable lines, or one JSON object per line.

``IMAGE_PIPELINE_LOG_FORMAT=json`` turns every record into a JSON object with
its time, level, logger and message, plus the ids a call passed in ``extra=``
(``job_id``, ``outcome``), so a log store can index jobs without parsing
sentences. Celery's own per-task lines are kept to warnings, so that each job
has one outcome line: the worker's ``process_image[<job id>] ...``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_image_pipeline"
QUIETED = ("celery.app.trace", "celery.worker.strategy")
"""Celery's 'received' and 'succeeded' lines, which repeat the outcome line."""

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra=`` fields become keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr in the chosen form.

    Like ``logging.basicConfig``, plain text is added only where no handler
    is set up yet; JSON always gets its own handler, installed once.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, _MARK, False)]
    for handler in ours:
        root.removeHandler(handler)
    if json_lines or not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)
        )
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level)
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.WARNING)
