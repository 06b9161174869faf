"""docker-compose.yml, the Procfile and the README's configuration table."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.config import describe

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_SERVICES = ("migrate", "web", "worker", "worker-heavy", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    # The docker CLI here has no compose plugin, so `docker compose config`
    # cannot run; check-jsonschema ships the Compose Specification's schema.
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose, schema)


def test_web_and_workers_wait_for_the_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("web", "worker", "worker-heavy", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["migrate"]["command"] == ["image-pipeline", "db", "upgrade"]


def test_every_server_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_the_heavy_worker_consumes_the_heavy_queue(compose: dict[str, Any]) -> None:
    command = compose["services"]["worker-heavy"]["command"]
    assert command[command.index("--queues") + 1] == "image-pipeline-heavy"


def test_no_secret_is_baked_into_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|KEY)\w*:", line):
            assert "${" in line, line


def test_volumes_keep_data_across_restarts(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "media"} <= set(compose["volumes"])


def test_procfile_runs_the_same_processes() -> None:
    processes = dict(
        line.split(": ", 1)
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.strip()
    )
    assert processes["release"] == "image-pipeline db upgrade"
    assert processes["web"].startswith("gunicorn ")
    assert "--queues image-pipeline-heavy" in processes["worker_heavy"]
    assert processes["beat"] == "image-pipeline beat"


def test_readme_configuration_table_lists_every_setting() -> None:
    listed = _readme_configuration_variables()
    missing = [env for env, _, _ in describe() if env not in listed]
    assert not missing, f"README's configuration table lacks {missing}"


def _readme_configuration_variables() -> set[str]:
    """Names in the first column of the table under '### Configuration'.

    A cell may name several, the later ones by suffix:
    `IMAGE_PIPELINE_LEASE` / `_LEASE_RENEW`.
    """
    text = (ROOT / "README.md").read_text()
    section = text.split("### Configuration", 1)[1].split("\n#", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        for name in re.findall(r"`([A-Z_][A-Z0-9_]*)`", line.split("|")[1]):
            names.add("IMAGE_PIPELINE" + name if name.startswith("_") else name)
    return names
