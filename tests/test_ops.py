"""prefect.yaml schedules in local time, serve-flows building the same deployments, secrets from blocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.ops import PREFECT_FILE, read_deployments, resolve_secrets, secret_block_names
from tests.conftest import Project


def _next_runs(schedule: dict, start: datetime, n: int) -> list[datetime]:
    from prefect.server.schemas.schedules import CronSchedule

    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    return [d.astimezone(UTC) for d in asyncio.run(cron.get_dates(n=n, start=start))]


def test_prefect_yaml_declares_publish_every_five_minutes_and_a_monday_digest() -> None:
    specs = {spec.name: spec for spec in read_deployments(prefect_file=PREFECT_FILE)}
    assert set(specs) == {"publish", "digest"}
    publish, digest = specs["publish"], specs["digest"]
    assert publish.entrypoint == "flows/publish.py:publish"
    assert digest.entrypoint == "flows/digest.py:digest"
    assert (publish.concurrency_limit, publish.collision_strategy) == (1, "CANCEL_NEW")
    runs = _next_runs(publish.schedules[0], datetime(2025, 3, 30, 0, 2, tzinfo=UTC), 3)
    assert [r.strftime("%H:%M") for r in runs] == ["00:05", "00:10", "00:15"]


def test_digest_goes_out_at_nine_brussels_time_on_both_sides_of_the_dst_change() -> None:
    [digest] = [spec for spec in read_deployments(prefect_file=PREFECT_FILE) if spec.name == "digest"]
    runs = _next_runs(digest.schedules[0], datetime(2025, 3, 20, tzinfo=UTC), 2)
    # 24 March is winter time (UTC+1), 31 March summer time (UTC+2): 09:00 local both times.
    assert runs == [datetime(2025, 3, 24, 8, 0, tzinfo=UTC), datetime(2025, 3, 31, 7, 0, tzinfo=UTC)]


def test_secret_blocks_fill_secrets_and_the_environment_wins(project: Project) -> None:
    settings = project.settings(PRESSROOM_SMTP__PASSWORD="from-env")
    blocks = {
        "pressroom-smtp-password": "from-block",
        "pressroom-dkim-key": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
        "pressroom-secret-key": "block-signing-key",
        "pressroom-social-outbox-default-token": "tok",
        "unrelated": "ignored",
    }
    resolved = resolve_secrets(settings, environ={"PRESSROOM_SMTP__PASSWORD": "from-env"}, blocks=blocks)
    assert resolved.smtp.password.get_secret_value() == "from-env"
    assert resolved.dkim.key.get_secret_value().startswith("-----BEGIN PRIVATE KEY-----")
    assert resolved.secret_key.get_secret_value() == "block-signing-key"
    assert resolved.social[0].token.get_secret_value() == "tok"
    # Secrets stay secret in any dump or log line.
    assert "block-signing-key" not in repr(resolved) and "tok'" not in str(resolved.social)


def test_without_blocks_the_settings_are_unchanged(project: Project) -> None:
    settings = project.settings()
    assert resolve_secrets(settings, environ={}, blocks={}) is settings
    assert "pressroom-social-outbox-default-token" in secret_block_names(settings)


@pytest.mark.usefixtures("prefect_harness")
def test_secret_blocks_are_read_from_the_prefect_api(project: Project) -> None:
    from prefect.blocks.system import Secret

    Secret(value="smtp-from-a-block").save("pressroom-smtp-password", overwrite=True)
    try:
        resolved = resolve_secrets(project.settings(), environ={})
    finally:
        Secret.delete("pressroom-smtp-password")
    assert resolved.smtp.password.get_secret_value() == "smtp-from-a-block"


def test_use_local_server_prefers_the_operators_api_url(project: Project, monkeypatch) -> None:
    from flows.ops import use_local_server

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = project.settings()
    assert use_local_server(settings) is None  # nothing started: Prefect uses its temporary server
    stale = settings.path("var") / "prefect" / "server.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"pid": 1, "url": "http://127.0.0.1:9/api"}')
    assert use_local_server(settings) is None  # a dead server is ignored, not used
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert use_local_server(settings) == "http://127.0.0.1:4200/api"

