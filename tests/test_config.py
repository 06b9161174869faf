"""Settings: embedded defaults, the environment, and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings, describe


def test_no_environment_means_embedded_defaults_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    data = tmp_path / "image-pipeline-data"
    assert settings.data_dir == str(data)
    assert settings.database_url == f"sqlite:///{data / 'pipeline.db'}"
    assert settings.broker_url == f"sqla+sqlite:///{data / 'broker.db'}"
    assert settings.embedded_broker
    assert settings.storage_url == (data / "media").as_uri()
    assert settings.problems() == []


def test_broker_defaults_to_redis_url(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "IMAGE_PIPELINE_DATA_DIR": str(tmp_path),
        }
    )
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert not settings.embedded_broker


def test_postgres_urls_use_psycopg_3() -> None:
    settings = Settings(database_url="postgres://u@h/db")
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@h/db"


def test_environment_values_are_parsed_by_type(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "IMAGE_PIPELINE_MAX_PIXELS": "1000",
            "IMAGE_PIPELINE_LEASE": "200.5",
            "IMAGE_PIPELINE_DATA_DIR": str(tmp_path),
        }
    )
    assert (settings.max_pixels, settings.lease_seconds) == (1000, 200.5)
    assert settings.limits.max_pixels == 1000


def test_unparseable_values_are_all_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {"IMAGE_PIPELINE_MAX_PIXELS": "lots", "IMAGE_PIPELINE_LEASE": "x"}
        )
    assert len(caught.value.problems) == 2
    assert "IMAGE_PIPELINE_MAX_PIXELS='lots'" in str(caught.value)


def test_every_broken_relation_and_limit_is_reported(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=str(tmp_path),
        soft_time_limit=200,
        hard_time_limit=100,
        lease_seconds=90,
        max_pixels=0,
        database_url="mysql://x",
        presets_json='{"cover": {"variants": {"md": -5}}}',
    ).resolved()
    problems = settings.problems()
    assert any("soft time limit must be shorter than the hard" in p for p in problems)
    assert any("hard time limit must be shorter than the lease" in p for p in problems)
    assert any("IMAGE_PIPELINE_MAX_PIXELS is 0" in p for p in problems)
    assert any("DATABASE_URL scheme 'mysql'" in p for p in problems)
    assert any("variant 'md' has width -5" in p for p in problems)
    with pytest.raises(ConfigError):
        settings.check()


def test_presets_from_the_environment_merge_over_the_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "IMAGE_PIPELINE_PRESETS": (
                '{"cover": {"variants": {"md": 1200}, "quality": 70}}'
            ),
            "IMAGE_PIPELINE_DATA_DIR": str(tmp_path),
        }
    )
    presets = settings.presets()
    assert set(presets) == {"default", "avatar", "cover"}
    assert [(v.name, v.width) for v in presets["cover"].variants] == [("md", 1200)]
    assert presets["cover"].version != presets["default"].version


@pytest.mark.parametrize("raw", ["[1, 2]", "{not json", '{"x": 3}'])
def test_malformed_presets_are_a_problem_not_a_crash(tmp_path: Path, raw: str) -> None:
    settings = Settings(data_dir=str(tmp_path), presets_json=raw).resolved()
    assert any("PRESETS" in p or "Preset" in p for p in settings.problems())


def test_every_setting_is_documented() -> None:
    rows = describe()
    assert {env for env, _, _ in rows} >= {
        "DATABASE_URL",
        "REDIS_URL",
        "BROKER_URL",
        "STORAGE_URL",
        "PUBLIC_MEDIA_URL",
    }
    assert all(doc.endswith(".") or doc.endswith(")") for _, _, doc in rows)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"retry_backoff_max": 900.0}, "longest retry backoff must be shorter"),
        ({"lease_renew_seconds": 90.0}, "lease renewal interval must be shorter"),
        ({"visibility_timeout": 180.0}, "lease must be shorter than the visibility"),
        ({"orphan_grace": 60.0}, "hard time limit must be shorter than the orphan"),
        ({"reaper_interval": 0.0}, "IMAGE_PIPELINE_REAPER_INTERVAL is 0"),
    ],
)
def test_timings_that_could_lose_or_repeat_work_are_refused(
    tmp_path: Path, changes: dict[str, float], message: str
) -> None:
    settings = Settings(data_dir=str(tmp_path), **changes).resolved()  # type: ignore[arg-type]
    problems = settings.problems()
    assert any(message in problem for problem in problems), problems
