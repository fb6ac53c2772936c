"""prefect.yaml schedules in local time, serve-flows building the same deployments, secrets from blocks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.deployments import PREFECT_FILE, read_deployments
from flows.credentials import resolve_secrets, secret_block_names
from tests.conftest import REPO, Project

BIN = Path(sys.executable).parent


def _next_runs(schedule: dict, start: datetime, n: int) -> list[datetime]:
    from prefect.server.schemas.schedules import CronSchedule

    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    # Plain aware datetimes, as a deployment passes them to the flow.
    return [datetime.fromtimestamp(d.timestamp(), UTC) for d in asyncio.run(cron.get_dates(n=n, start=start))]


def test_prefect_yaml_declares_publish_every_five_minutes_and_a_monday_digest() -> None:
    specs = {spec.name: spec for spec in read_deployments(prefect_file=PREFECT_FILE)}
    assert set(specs) == {"publish", "digest", "send"}
    assert specs["send"].schedules == ()  # helpers start only when a publish run shares a big send
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
    from flows.server import use_local_server

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = project.settings()
    assert use_local_server(settings) is None  # nothing started: Prefect uses its temporary server
    stale = settings.path("var") / "prefect" / "server.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"pid": 1, "url": "http://127.0.0.1:9/api"}')
    assert use_local_server(settings) is None  # a dead server is ignored, not used
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert use_local_server(settings) == "http://127.0.0.1:4200/api"



@pytest.mark.usefixtures("prefect_harness")
def test_a_scheduled_release_goes_out_on_the_first_scheduled_run_after_its_time(project: Project) -> None:
    """The deployment's own schedule drives the clock: runs at 09:00, 09:05, 09:10 Brussels time."""
    from flows.publish import publish

    [spec] = [spec for spec in read_deployments(prefect_file=PREFECT_FILE) if spec.name == "publish"]
    # 09:02 Brussels summer time = 07:02 UTC; the runs around it come from prefect.yaml's schedule.
    project.write_release("just-in-time", title="Just in time", date="2024-08-02 09:02")
    runs = _next_runs(spec.schedules[0], datetime(2024, 8, 2, 6, 58, tzinfo=UTC), 3)
    assert [r.strftime("%H:%M") for r in runs] == ["07:00", "07:05", "07:10"]
    settings_file = str(project.root / "pressroom.toml")
    from pressroom.audience import Audience

    Audience.from_settings(project.settings()).add(address="reader@example.org", now=runs[0], source="test")
    posts = project.root / "var" / "outbox" / "social"
    emails = project.root / "var" / "outbox" / "email"

    early = publish(settings_file=settings_file, now=runs[0])
    assert early.newly_public == [] and not posts.exists() and not list(emails.rglob("*.eml"))
    assert early.next_release == ("just-in-time", datetime(2024, 8, 2, 7, 2, tzinfo=UTC))
    assert "next scheduled publication: `just-in-time` at 2024-08-02 09:02 CEST" in early.as_markdown(project.settings())

    due = publish(settings_file=settings_file, now=runs[1])
    assert due.newly_public == ["just-in-time"]
    assert len(list(posts.rglob("*.json"))) == 3  # one post per network, three minutes late at most five
    assert [p.name for p in emails.rglob("*.eml")] == ["reader@example.org.eml"]
    assert publish(settings_file=settings_file, now=runs[2]).newly_public == []


def test_a_social_secret_in_the_environment_wins_over_its_block(project: Project) -> None:
    settings = project.settings(PRESSROOM_SOCIAL__OUTBOX__TOKEN="from-env")
    blocks = {"pressroom-social-outbox-default-token": "from-block"}
    resolved = resolve_secrets(settings, environ={"PRESSROOM_SOCIAL__OUTBOX__TOKEN": "from-env"}, blocks=blocks)
    assert resolved.social[0].token.get_secret_value() == "from-env"
    assert resolve_secrets(project.settings(), environ={}, blocks=blocks).social[0].token.get_secret_value() == "from-block"


def test_serve_flows_builds_the_deployments_of_prefect_yaml(tmp_path: Path) -> None:
    from flows.deployments import _runner_deployments

    deployments = {d.name: d for d in _runner_deployments(prefect_file=PREFECT_FILE)}
    assert set(deployments) == {"publish", "digest", "send"}
    publish = deployments["publish"]
    assert publish.concurrency_limit == 1
    assert publish.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    [schedule] = publish.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("*/5 * * * *", "Europe/Brussels")
    [weekly] = deployments["digest"].schedules
    assert (weekly.schedule.cron, weekly.schedule.timezone) == ("0 9 * * 1", "Europe/Brussels")
    assert publish.parameters == {"settings_file": "pressroom.toml"}


@pytest.mark.usefixtures("prefect_harness")
def test_digest_command_sends_the_week_before_now_and_prints_the_report(project: Project) -> None:
    import io

    from typer.testing import CliRunner

    from pressroom.audience import Audience
    from pressroom.cli import app
    from pressroom.ledger import Ledger
    from pressroom.releases import load_releases
    from tests.conftest import NOW

    project.write_release("tuesday-news", title="Tuesday news", date="2024-07-30 09:00")
    settings = project.settings()
    Audience.from_settings(settings).import_csv(
        file=io.StringIO("address,name,topics,cadence,status\nweekly@example.org,Weekly,,weekly,confirmed\n"), now=NOW
    )
    Ledger.from_settings(settings).record_public(releases=load_releases(settings).releases, now=NOW)
    toml = str(project.root / "pressroom.toml")

    # Monday 5 August, 09:00 Brussels: the week of Monday 29 July.
    result = CliRunner().invoke(app, ["digest", "--settings", toml, "--now", "2024-08-05T09:00+02:00"])
    assert result.exit_code == 0, result.output
    assert "digest-2024-W31" in result.output and "sent 1 (1 this run)" in result.output
    [eml] = (project.root / "var" / "outbox" / "email").glob("digest-2024-W31/*.eml")
    assert eml.name == "weekly@example.org.eml" and b"Tuesday news" in eml.read_bytes()

    again = CliRunner().invoke(app, ["digest", "--settings", toml, "--now", "2024-08-05T09:05+02:00"])
    assert again.exit_code == 0 and "sent 1 (0 this run)" in again.output  # a rerun sends nothing twice


def _clean_environ(**extra: str) -> dict[str, str]:
    """This environment without the test session's Prefect and Pressroom choices, as an operator's shell."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "PRESSROOM_")) and key != "DO_NOT_TRACK"
    }
    return environ | extra


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_run_without_the_local_server_does_not_phone_home(project: Project) -> None:
    # The temporary server Prefect starts for a lone run had its telemetry service report
    # "Failed to send telemetry" (it tried to reach Prefect's servers). Nothing turned it off here.
    result = subprocess.run(
        [str(BIN / "pressroom"), "publish", "--settings", str(project.root / "pressroom.toml")],
        # A loaded machine may need more than Prefect's 20 s to start the temporary server.
        env=_clean_environ(PREFECT_HOME=str(project.root / "prefect-home"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120"),
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stopping temporary server" in result.stdout + result.stderr  # it did run without a server
    assert "telemetry" not in (result.stdout + result.stderr).lower()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_serve_flows_publishes_a_release_when_it_becomes_due(project: Project) -> None:
    """`pressroom serve-flows` alone: the local server's scheduler starts publish runs; nobody runs anything."""
    from flows.server import stop_local_server
    from pressroom.audience import Audience
    from tests.flows.test_production import _kill_tree

    settings = project.settings()
    Audience.from_settings(settings).add(address="reader@example.org", now=datetime.now(UTC), source="test")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    project.write_release("due-soon", title="Due soon", date=due.isoformat())
    page = settings.path("public") / "releases" / "due-soon" / "index.html"
    outbox = settings.path("var") / "outbox" / "email"
    log = (project.root / "serve-flows.log").open("wb")
    serving = subprocess.Popen(
        [str(BIN / "pressroom"), "serve-flows", "--settings", str(project.root / "pressroom.toml"),
         "--prefect-file", str(PREFECT_FILE), "--interval", "5"],
        env=_clean_environ(PREFECT_HOME=str(project.root / "prefect-home")),
        cwd=project.root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not (page.exists() and list(outbox.rglob("reader@example.org.eml"))):
            assert serving.poll() is None, (project.root / "serve-flows.log").read_text()
            assert time.monotonic() < deadline, "not published in 3 minutes:\n" + (project.root / "serve-flows.log").read_text()
            time.sleep(1)
    finally:
        _kill_tree(serving)
        log.close()
        stop_local_server(settings)
    [email] = outbox.rglob("reader@example.org.eml")
    assert b"Due soon" in email.read_bytes()
    assert "Due soon" in page.read_text(encoding="utf-8")
    assert (settings.path("var") / "prefect" / "server.log").exists()  # the project's own server, not a temporary one


def test_serve_flows_overrides_change_only_what_they_name(tmp_path: Path) -> None:
    from flows.deployments import _runner_deployments

    toml = tmp_path / "pressroom.toml"
    deployments = {d.name: d for d in _runner_deployments(prefect_file=PREFECT_FILE, settings_file=toml, publish_interval=5)}
    [quick] = deployments["publish"].schedules
    assert quick.schedule.interval.total_seconds() == 5
    [weekly] = deployments["digest"].schedules
    assert weekly.schedule.cron == "0 9 * * 1"  # prefect.yaml's own schedules stay as written
    assert {d.parameters["settings_file"] for d in deployments.values()} == {str(toml)}
    assert read_deployments(prefect_file=PREFECT_FILE)[0].schedules[0]["cron"] == "*/5 * * * *"


def test_no_flow_module_is_named_like_a_standard_module() -> None:
    """Prefect puts flows/ on sys.path when a worker loads an entrypoint from it: a flows/secrets.py
    there stood in for the standard `secrets` in the worker processes, and they died at import."""
    import sys

    names = {path.stem for path in (REPO / "flows").glob("*.py")}
    assert names & set(sys.stdlib_module_names) == set()
