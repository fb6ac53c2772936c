"""Commands that run the flows and servers: publish, digest, doctor, serve, serve-flows, prefect-server."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer

from pressroom.cli.base import (
    NowOption,
    SettingsOption,
    app,
    console,
    err,
    open_settings,
    parse_now,
    use_local_prefect,
)
from pressroom.settings import Settings, WebSettings

T = TypeVar("T")


def _in_prefect(run: Callable[[], T]) -> T:
    """Run a flow from the terminal: Prefect's temporary server not starting in time is one line with
    the next step, never a traceback."""
    try:
        return run()
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        waited = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "20")
        err.print(f"[red]error:[/red] Prefect's temporary server did not start within {waited} s (hint: start the "
                  "project's own server once with `pressroom prefect-server`, which later commands find; on a busy "
                  "machine raise \\[prefect] start_timeout)", soft_wrap=True)
        raise typer.Exit(1) from None


def _seed_sample_audience(settings: Settings) -> None:
    """The sample list of a fresh clone (``[audience] seed_csv``) goes in only while there is no subscriber
    at all. Here, on ``make run``'s path, never in the flows a deployment runs. Connecting also checks
    the database before Prefect starts, so a database that is down is one line, not a flow traceback."""
    from pressroom.audience import Audience

    audience = Audience.from_settings(settings)
    path = settings.audience.seed_csv
    if path is not None:
        audience.seed_if_empty(file=path if path.is_absolute() else settings.root / path, now=datetime.now(UTC))


def _live_parts(settings: Settings) -> list[str]:
    """What would reach real people: the SMTP transport, real social accounts."""
    parts = ["email.transport = smtp"] if settings.email.transport == "smtp" else []
    return parts + [f"the {a.network} account {a.account!r}" for a in settings.social if a.enabled and a.network != "outbox"]


def _dry_run(settings: Settings) -> Path:
    """Point this process at a copy of everything under var/dry-run/: outbox transport, outbox social
    account, a copy of the SQLite database, its own public/. The real ledger and site are not touched."""
    import os
    import shutil
    import sqlite3

    if settings.database_url is not None:
        err.print("[red]error:[/red] --dry-run works on a copy of the embedded SQLite database; with database_url set, "
                  "run the dry run against a staging database (PRESSROOM_DATABASE_URL) with the outbox transport")
        raise typer.Exit(2)
    base = settings.path("var") / "dry-run"
    shutil.rmtree(base, ignore_errors=True)
    (base / "var").mkdir(parents=True)
    database = settings.embedded_database
    if database.exists():
        with sqlite3.connect(database) as source, sqlite3.connect(base / "var" / "pressroom.db") as copy:
            source.backup(copy)  # consistent even while a WAL is in use
    settings.signing_keys()  # the links of the dry run are signed as the real ones would be
    if (settings.path("var") / "secret_key").exists():
        shutil.copy2(settings.path("var") / "secret_key", base / "var" / "secret_key")
    os.environ.update({
        "PRESSROOM_PATHS__VAR": str(base / "var"), "PRESSROOM_PATHS__PUBLIC": str(base / "public"),
        "PRESSROOM_EMAIL__TRANSPORT": "outbox", "PRESSROOM_SOCIAL__OUTBOX__ENABLED": "true",
    })
    for account in settings.social:
        if account.network != "outbox":
            os.environ[f"PRESSROOM_SOCIAL__{account.network.upper()}_{account.account.upper()}__ENABLED"] = "false"
    return base


@app.command()
def publish(
    settings_file: SettingsOption = None,
    now: NowOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="send nothing: write what would be sent under var/dry-run/ (a copy of the database; the real ledger is untouched)")] = False,
) -> None:
    """Publish now: update the website, then email and post each release that has become public, once."""
    settings = open_settings(settings_file)
    moment = parse_now(now)
    live = _live_parts(settings)
    if dry_run:
        base = _dry_run(settings)
        err.print(f"dry run: emails, posts and the site go to {base}; nothing is sent", markup=False)
    elif moment > datetime.now(UTC) + timedelta(minutes=1) and live:
        # A pretend future would send for real what is not due yet: embargoed releases among them.
        err.print(f"[red]error:[/red] --now {moment.isoformat()} is in the future and {', '.join(live)} would send for real",
                  soft_wrap=True)
        err.print("hint: add --dry-run to see what would be sent (under var/dry-run/), or use the outbox transport", soft_wrap=True)
        raise typer.Exit(2)
    else:
        _seed_sample_audience(settings)
    use_local_prefect(settings)
    from flows.publish import publish as publish_flow

    summary = _in_prefect(lambda: publish_flow(settings_file=str(settings_file) if settings_file else None, now=moment))
    console.print(summary.as_text(), markup=False, soft_wrap=True)
    if summary.problems:
        raise typer.Exit(1)


@app.command()
def digest(settings_file: SettingsOption = None, now: NowOption = None) -> None:
    """Send the weekly digest now: the week before (Monday to Monday) to the readers who chose a weekly email."""
    settings = open_settings(settings_file)
    use_local_prefect(settings)
    from flows.digest import digest as digest_flow

    moment = parse_now(now)
    report = _in_prefect(lambda: digest_flow(settings_file=str(settings_file) if settings_file else None, now=moment))
    console.print(report.as_text(), markup=False, soft_wrap=True)
    if report.error:  # stopped early; the rest stays due for the next run
        raise typer.Exit(1)


@app.command()
def doctor(
    dns: Annotated[bool, typer.Option("--dns", help="only read the sending domain's DNS: SPF, DKIM, DMARC, reverse DNS, MTA-STS, TLS-RPT, BIMI")] = False,
    settings_file: SettingsOption = None,
) -> None:
    """Before going live: check the settings, sample data, mail server login, social accounts, DKIM key and DNS, templates and database."""
    from pressroom.doctor import DNS_CHECKS, run_doctor

    settings = _ops_settings(open_settings(settings_file))
    findings = run_doctor(settings=settings, checks=DNS_CHECKS if dns else None)
    for finding in findings:
        (console if finding.ok else err).print(finding.line(), markup=False, soft_wrap=True)
    problems = sum(not finding.ok for finding in findings)
    if problems:
        err.print(f"[red]{problems} problem(s)[/red]")
        raise typer.Exit(1)
    console.print("no problems found")


@app.command("serve-flows")
def serve_flows(
    prefect_file: Annotated[Path, typer.Option(help="the deployments to serve")] = Path("prefect.yaml"),
    limit: Annotated[Optional[int], typer.Option(help="at most this many runs at once")] = None,
    interval: Annotated[
        Optional[int],
        typer.Option(min=1, help="run publish every this many seconds instead of prefect.yaml's schedule (tests, demos)"),
    ] = None,
    settings_file: SettingsOption = None,
) -> None:
    """Run the scheduled jobs of prefect.yaml (publish every few minutes, the Monday digest) from this process.

    Starts (or finds) the project's local Prefect server first, as `pressroom prefect-server` does: its scheduler makes the schedules fire. The server keeps running after serve-flows stops.
    """
    from flows.deployments import serve_flows as serve
    from flows.server import start_local_server

    settings = open_settings(settings_file)
    url = start_local_server(settings)
    console.print(f"Prefect API: {url} (UI: {url.removesuffix('/api')}); stop serving with Ctrl-C, the server with `pressroom prefect-server --stop`")
    serve(
        settings=settings,
        prefect_file=prefect_file.resolve(),
        settings_file=settings_file.resolve() if settings_file else None,
        limit=limit,
        publish_interval=interval,
    )


@app.command("prefect-server")
def prefect_server(
    settings_file: SettingsOption = None,
    stop: Annotated[bool, typer.Option("--stop", help="stop the project's local server")] = False,
) -> None:
    """Start a local Prefect server under var/prefect/ that later commands use, so each run starts in seconds."""
    from flows.server import start_local_server, stop_local_server

    settings = open_settings(settings_file)
    if stop:
        console.print("stopped" if stop_local_server(settings) else "no local server was running")
        return
    url = start_local_server(settings)
    console.print(f"Prefect API: {url} (UI: {url.removesuffix('/api')}); stop it with `pressroom prefect-server --stop`")



def _ops_settings(settings: Settings) -> Settings:
    """Settings with Prefect Secret blocks applied, when a Prefect API is configured; plain settings otherwise."""
    from flows.server import use_local_server

    if not use_local_server(settings):
        return settings  # no server to hold Secret blocks; starting a temporary one would only cost time
    from flows.credentials import resolve_secrets

    return resolve_secrets(settings)




@app.command()
def serve(
    settings_file: SettingsOption = None,
    host: Annotated[Optional[str], typer.Option(
        help=f"address to listen on (default: {WebSettings.model_fields['host'].default}, or \\[web] host in pressroom.toml)")] = None,
    port: Annotated[Optional[int], typer.Option(
        help=f"port to listen on (default: {WebSettings.model_fields['port'].default}, or \\[web] port in pressroom.toml)")] = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = True,
) -> None:
    """Run the website: public/, the subscribe, unsubscribe and preferences pages, and journalists' embargoed previews."""
    from pressroom.web import serve as serve_web

    settings = open_settings(settings_file)
    routes = []
    if settings.email.editors:
        # The proof's Approve/Reject links resume paused runs on the Prefect API the flows use,
        # signed with the secret the flows sign with (a Secret block, when there is one).
        from flows.credentials import resolve_secrets
        from flows.server import use_local_server
        from pressroom.cli.gate import prefect_gate
        from pressroom.web.approval import approval_routes

        if use_local_server(settings):
            settings = resolve_secrets(settings)
        routes = approval_routes(settings=settings, gate=prefect_gate())
    console.print(f"serving {settings.path('public')} and the subscription pages on http://{host or settings.web.host}:{port or settings.web.port}/")
    serve_web(settings=settings, host=host, port=port, access_log=access_log, extra_routes=routes)
