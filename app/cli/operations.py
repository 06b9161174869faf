"""Operating a deployment: ``db``, ``status``, ``requeue``, ``stats``,
``deliveries``, ``config`` and ``keys``."""

from __future__ import annotations

import json
import sys

import click

from app.cli import _app, _settings, main
from app.config import ConfigError, Settings


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from app.db import Database
    from app.migrate import upgrade

    settings = _settings()
    database = Database(settings.sqlalchemy_url)
    upgrade(database, revision)
    click.echo(f"Database is at revision {revision}.")


@main.group()
def deliveries() -> None:
    """The delivery log: completed jobs handed to sinks."""


@deliveries.command("list")
@click.option(
    "--status", type=click.Choice(["PENDING", "DELIVERED", "SUPERSEDED", "FAILED"])
)
@click.option("--limit", default=50, show_default=True)
def deliveries_list(status: str | None, limit: int) -> None:
    """Show recent deliveries, newest first."""
    from sqlalchemy import select

    from app.models import Delivery

    query = select(Delivery).order_by(Delivery.updated_at.desc()).limit(limit)
    if status:
        query = query.where(Delivery.status == status)
    with _app() as app, app.extensions["image_pipeline"].db.transaction() as session:
        for row in session.scalars(query):
            click.echo(
                f"{row.id}  {row.status:<10} {row.sink:<28} job {row.job_id}  "
                f"attempts {row.attempts}  {row.last_error or ''}".rstrip()
            )


@deliveries.command("replay")
@click.argument("delivery_id")
def deliveries_replay(delivery_id: str) -> None:
    """Send DELIVERY_ID to its sink again on the next delivery cycle."""
    with _app() as app:
        replayed = app.extensions["image_pipeline"].deliverer.replay(delivery_id)
    if not replayed:
        raise click.ClickException(f"No delivery {delivery_id!r}.")
    click.echo(f"Delivery {delivery_id} will be sent again on the next cycle.")


@main.command()
@click.argument("job_id")
def status(job_id: str) -> None:
    """Print JOB_ID's status as JSON, the body of GET /status/<jobId>."""
    with _app() as app:
        record = app.extensions["image_pipeline"].get_status(job_id)
    if record is None:
        raise click.ClickException(f"No job {job_id!r}.")
    click.echo(json.dumps(record.to_json(), indent=2))


@main.command()
@click.option("--failed", is_flag=True, help="Every FAILED job.")
@click.option(
    "--stuck",
    is_flag=True,
    help="Jobs PROCESSING past their lease, or PENDING past the pending grace.",
)
@click.argument("job_ids", nargs=-1)
def requeue(failed: bool, stuck: bool, job_ids: tuple[str, ...]) -> None:
    """Put FAILED or stuck jobs back to PENDING, attempts reset, and send them.

    COMPLETE and REJECTED jobs are refused (exit 1): they are final.
    """
    from app.stats import requeue_candidates

    if not (failed or stuck or job_ids):
        raise click.UsageError("Name job ids, or pass --failed and/or --stuck.")
    with _app() as app:
        pipeline = app.extensions["image_pipeline"]
        grace = pipeline.settings.pending_grace
        targets = list(job_ids) + requeue_candidates(
            pipeline.db, failed=failed, stuck=stuck, stuck_after=grace
        )
        refused = []
        for job_id in dict.fromkeys(targets):
            if pipeline.jobs.requeue(job_id, stuck_after=grace):
                pipeline.dispatch(job_id)
                click.echo(f"{job_id} requeued")
            else:
                refused.append(job_id)
    for job_id in refused:
        click.echo(
            f"{job_id} refused: only FAILED or stuck jobs can be requeued.", err=True
        )
    if refused:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead.")
def stats(as_json: bool) -> None:
    """Jobs by status, the queue depth and the oldest PENDING job's age."""
    from app.stats import job_stats

    with _app() as app:
        result = job_stats(app.extensions["image_pipeline"].db)
    counts = result.by_status()
    summary = {
        "jobs": counts,
        "queueDepth": result.queue_depth,
        "oldestPendingAgeSeconds": result.oldest_pending_age,
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    for name, count in counts.items():
        click.echo(f"{name:<12}{count:>8}")
    click.echo(f"{'queue depth':<12}{result.queue_depth:>8}")
    age = result.oldest_pending_age
    click.echo("oldest pending: " + ("none" if age is None else f"{age:.0f} s"))


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
def config_check() -> None:
    """Validate the environment; print every problem, then the settings.

    Exits 1 when any setting is invalid. Passwords in URLs and secrets in
    sink settings are masked.
    """
    from app.config import describe_values

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = settings.problems()
    if problems:
        click.echo(f"{len(problems)} problem(s):", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    click.echo("Configuration is valid.")
    for env, value in describe_values(settings):
        click.echo(f"{env}={value}")


@config.command("docs")
def config_docs() -> None:
    """Print the settings as a Markdown table, from their definitions."""
    from app.config import describe

    click.echo("| variable | default | meaning |")
    click.echo("|---|---|---|")
    for env, default, doc in describe():
        shown = "unset" if default in ("''", '""') else f"`{default}`"
        escaped = doc.replace("|", r"\|")
        click.echo(f"| `{env}` | {shown} | {escaped} |")


@main.group()
def keys() -> None:
    """API keys for IMAGE_PIPELINE_AUTH=api-key."""


@keys.command("new")
@click.argument("principal")
def keys_new(principal: str) -> None:
    """Make a key for PRINCIPAL: give the key to the client, the entry to config."""
    from app.security import hash_key, new_key, parse_api_keys

    if ":" in principal or "," in principal or not principal.strip():
        raise click.BadParameter(
            "use a name without ':' or ','.", param_hint="PRINCIPAL"
        )
    key = new_key()
    entry = f"{principal}:{hash_key(key)}"
    parse_api_keys(entry)
    click.echo(f"key (give to the client, shown once): {key}")
    click.echo(f"add to IMAGE_PIPELINE_API_KEYS:       {entry}")
