"""The ``pressroom`` command. Each command is a thin shell over one core function.

Bad content never shows a traceback: every PressroomError is printed as one line with its hint,
and the exit code says whether anything was wrong.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from pressroom.errors import PressroomError, TransientError
from pressroom.settings import Settings, load_settings

if TYPE_CHECKING:
    from pressroom.audience import ImportReport

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SettingsOption = Annotated[
    Optional[Path], typer.Option("--settings", "-s", help="pressroom.toml to use (default: ./pressroom.toml)")
]
NowOption = Annotated[
    Optional[str],
    typer.Option("--now", help="pretend it is this time (ISO 8601 with offset, e.g. 2024-07-30T09:00+02:00)"),
]


def _settings(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except PressroomError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        err.print(f"[red]error:[/red] --now {value!r}: write an ISO 8601 time with an offset, e.g. 2024-07-30T09:00+02:00")
        raise typer.Exit(2)
    return moment


@app.command()
def check(
    path: Annotated[Optional[Path], typer.Argument(help="a release file or folder (default: content/releases)")] = None,
    settings_file: SettingsOption = None,
    now: NowOption = None,
) -> None:
    """Validate releases: one line per problem (file:line: field: message), then each valid release's status."""
    from pressroom.releases import load_releases

    settings = _settings(settings_file)
    moment = _now(now)
    result = load_releases(settings, path=path)
    for problem in sorted([*result.problems, *result.warnings], key=lambda found: (str(found.path), found.line or 1)):
        console.print(problem.line_for_humans(Path.cwd()), markup=False, soft_wrap=True)
    # Only the whole folder tells a deleted release from one not checked. With the embedded
    # database not created yet nothing was ever published: a check does not create it.
    published = settings.database_url or settings.embedded_database.exists()
    if path is None and published:
        from pressroom.dispatch.after import reminders
        from pressroom.errors import PressroomError
        from pressroom.ledger import Ledger

        try:
            lines = reminders(loaded=result, ledger=Ledger.from_settings(settings), now=moment, root=Path.cwd())
        except PressroomError as exc:  # the files are checked all the same; only what was published is unknown
            lines = [f"reminders about published releases skipped: {exc}"]
        for line in lines:
            console.print(line, markup=False, soft_wrap=True)
    zone = settings.site.tz
    for release in sorted(result.releases, key=lambda r: r.date):
        if release.status in ("draft", "withdrawn"):
            state = release.status
        elif release.is_public(moment):
            state = "public"
        elif release.expires is not None and moment >= release.expires:
            state = "expired"
        else:
            state = "scheduled"
        utc = release.date.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        local = release.date.astimezone(zone).strftime(f"%Y-%m-%d %H:%M %Z ({zone.key})")
        versions = f"  (also in {', '.join(release.translations)})" if release.translations else ""
        console.print(f"ok  {release.slug}  {state:<9}  {utc} = {local}{versions}", markup=False, soft_wrap=True)
        if release.embargo is not None:
            notify = release.embargo.notify
            console.print(f"    embargo: journalists hear of it at {notify.astimezone(UTC):%Y-%m-%d %H:%M UTC} = "
                          f"{notify.astimezone(zone):%Y-%m-%d %H:%M %Z}", markup=False, soft_wrap=True)
    total = len(result.releases) + len(result.problems)
    summary = f"{len(result.releases)} of {total} releases valid"
    if result.problems:
        err.print(f"[red]{summary}; {len(result.problems)} with problems[/red]")
        raise typer.Exit(1)
    console.print(summary)


@app.command()
def build(settings_file: SettingsOption = None, now: NowOption = None) -> None:
    """Render public/ (pages, feeds, sitemap) from content/ and the clock; rewrites only what changed."""
    from pressroom.releases import load_releases
    from pressroom.site import build_site

    settings = _settings(settings_file)
    result = load_releases(settings)
    for problem in result.problems:
        err.print(f"[yellow]skipped:[/yellow] {problem.line_for_humans(Path.cwd())}", soft_wrap=True)
    for warning in result.warnings:
        err.print(warning.line_for_humans(Path.cwd()), markup=False, soft_wrap=True)
    report = build_site(settings=settings, releases=result.releases, now=_now(now))
    console.print(
        f"public/: {report.pages} pages; wrote {len(report.written)}, unchanged {report.unchanged}, "
        f"removed {len(report.removed)} ({settings.path('public')})"
    )


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
    """Run the publish flow once: build the site, then email and post every newly public release."""
    settings = _settings(settings_file)
    moment = _now(now)
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
    _use_local_prefect(settings)
    from flows.publish import publish as publish_flow

    summary = publish_flow(settings_file=str(settings_file) if settings_file else None, now=moment)
    console.print(summary.as_text())
    if summary.problems:
        raise typer.Exit(1)


@app.command()
def digest(settings_file: SettingsOption = None, now: NowOption = None) -> None:
    """Run the digest flow once: send the week before --now (Monday to Monday, site time zone) to its readers."""
    settings = _settings(settings_file)
    _use_local_prefect(settings)
    from flows.digest import digest as digest_flow

    report = digest_flow(settings_file=str(settings_file) if settings_file else None, now=_now(now))
    console.print(report.as_text(), markup=False, soft_wrap=True)
    if report.error:  # stopped early; the rest stays due for the next run
        raise typer.Exit(1)


@app.command()
def doctor(settings_file: SettingsOption = None) -> None:
    """Check settings, credentials (SMTP login, social tokens), DKIM key, templates and the database; exit 1 on problems."""
    from pressroom.doctor import run_doctor

    settings = _ops_settings(_settings(settings_file))
    findings = run_doctor(settings=settings)
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
    """Serve the deployments of prefect.yaml from this process, on their schedules, without a worker.

    Starts (or finds) the project's local Prefect server first, as `pressroom prefect-server` does: its scheduler makes the schedules fire. The server keeps running after serve-flows stops.
    """
    from flows.ops import serve_flows as serve
    from flows.ops import start_local_server

    settings = _settings(settings_file)
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
    """Start a local Prefect server under var/prefect/ that later commands find, so a run skips Prefect's 7-19 s start."""
    from flows.ops import start_local_server, stop_local_server

    settings = _settings(settings_file)
    if stop:
        console.print("stopped" if stop_local_server(settings) else "no local server was running")
        return
    url = start_local_server(settings)
    console.print(f"Prefect API: {url} (UI: {url.removesuffix('/api')}); stop it with `pressroom prefect-server --stop`")


def _use_local_prefect(settings: Settings) -> None:
    """Before Prefect is imported: use the project's running local server (`pressroom prefect-server`), if any."""
    from flows.ops import use_local_server

    use_local_server(settings)


def _ops_settings(settings: Settings) -> Settings:
    """Settings with Prefect Secret blocks applied, when a Prefect API is configured; plain settings otherwise."""
    from flows.ops import use_local_server

    if not use_local_server(settings):
        return settings  # no server to hold Secret blocks; starting a temporary one would only cost time
    from flows.ops import resolve_secrets

    return resolve_secrets(settings)


def _preview_social(settings: Settings, slug: str) -> None:
    """Print every social post of a release with its count; nothing is sent."""
    from pressroom.releases import load_releases
    from pressroom.social import preview_social

    result = load_releases(settings)
    release = next((r for r in result.releases if r.slug == slug), None)
    if release is None:
        for problem in result.problems:
            if slug in str(problem.path):
                err.print(problem.line_for_humans(Path.cwd()), markup=False, soft_wrap=True)
        err.print(f"[red]error:[/red] no valid release with slug {slug!r} (see `pressroom check`)")
        raise typer.Exit(2)
    console.print(preview_social(release=release, settings=settings), markup=False, soft_wrap=True)


def _approval_reader(settings: Settings):
    """The editors' decisions, read from Prefect only when some release needs one (it costs a server)."""
    def approved(release) -> bool:
        _use_local_prefect(settings)
        from flows.approval import email_approved

        return email_approved(release=release, settings=settings)

    return approved


@app.command()
def preview(
    slug: Annotated[Optional[str], typer.Argument(help="the release to preview (any status)")] = None,
    digest: Annotated[bool, typer.Option("--digest", help="preview the weekly digest the digest flow would send at --now")] = False,
    no_screenshots: Annotated[bool, typer.Option("--no-screenshots", help="skip the Chromium PNGs")] = False,
    social: Annotated[bool, typer.Option("--social", help="show the release's social posts with their counts instead")] = False,
    language: Annotated[str, typer.Option("--language", help="the email a reader of this language gets (e.g. de)")] = "",
    settings_file: SettingsOption = None,
    now: NowOption = None,
) -> None:
    """Write an email's HTML, text, .eml and PNG screenshots (375 px, 600 px) to var/preview/ and print the paths."""
    from rich.markup import escape

    from pressroom.mail.preview import write_preview

    if digest == (slug is not None):
        err.print("[red]error:[/red] give a release SLUG or --digest (one of the two)")
        raise typer.Exit(2)
    settings = _settings(settings_file)
    if social:
        _preview_social(settings, slug or "")
        return
    try:
        files = write_preview(settings=settings, slug=slug, digest=digest, now=_now(now), shots=not no_screenshots,
                              approved=_approval_reader(settings) if digest else None, language=language)
    except PressroomError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    for path in files.all():
        console.print(str(path), markup=False, soft_wrap=True)

# --------------------------------------------------------------------------- subscribers and deliveries

subscribers_app = typer.Typer(no_args_is_help=True, help="Subscribers: add, import, export, remove, list.")
deliveries_app = typer.Typer(no_args_is_help=True, help="The delivery ledger: report, retry ambiguous sends.")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(deliveries_app, name="deliveries")


def _audience(settings_file: Path | None):
    from pressroom.audience import Audience

    return Audience.from_settings(_settings(settings_file))


@subscribers_app.command("add")
def subscribers_add(
    address: Annotated[str, typer.Argument(help="the email address")],
    name: Annotated[str, typer.Option(help="how the emails greet them")] = "",
    topic: Annotated[Optional[list[str]], typer.Option("--topic", help="a tag to follow (repeat it); none = everything")] = None,
    cadence: Annotated[str, typer.Option(help="per-release or weekly")] = "per-release",
    language: Annotated[Optional[str], typer.Option(help="language tag, default: the site's")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="add unconfirmed (they must confirm first)")] = False,
    evidence: Annotated[str, typer.Option(help="how they agreed, kept as consent evidence")] = "added by an operator",
    settings_file: SettingsOption = None,
) -> None:
    """Add one subscriber (confirmed unless --pending)."""
    audience = _audience(settings_file)
    sub = audience.add(address=address, name=name, topics=topic or [], cadence=cadence, language=language,
                       status="pending" if pending else "confirmed", now=datetime.now(UTC), source="cli", evidence=evidence)
    console.print(f"added {sub.address} ({sub.status}, {sub.cadence}, topics: {', '.join(sub.topics) or 'everything'})")


def _import_csv(file: Path, run: Callable[[], ImportReport]) -> None:
    """What every CSV import prints: each skipped row with its line, then the counts; exit 1 if any was skipped."""
    if not file.is_file():
        err.print(f"[red]error:[/red] {file}: no such file")
        raise typer.Exit(2)
    report = run()
    for line, message in report.problems:
        err.print(f"{file}:{line}: {message}", markup=False, soft_wrap=True)
    console.print(f"imported {report.added}; skipped {len(report.problems)} ({report.duplicates} duplicates)")
    if report.problems:
        raise typer.Exit(1)


def _export_csv(file: Path, export: Callable[..., int], what: str) -> None:
    """``export`` into ``file``, or to standard output for ``-``."""
    if str(file) == "-":
        export(file=sys.stdout)
        return
    with file.open("w", encoding="utf-8", newline="") as handle:
        count = export(file=handle)
    console.print(f"exported {count} {what} to {file}")


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header: address[,name,language,topics,cadence,status,consent]")],
    pending: Annotated[bool, typer.Option("--pending", help="rows without a status column become pending")] = False,
    settings_file: SettingsOption = None,
) -> None:
    """Import subscribers from CSV; each bad row or duplicate is reported with its line and skipped."""
    status = "pending" if pending else "confirmed"
    _import_csv(file, lambda: _audience(settings_file).import_csv(file=file, now=datetime.now(UTC), status=status))


@subscribers_app.command("export")
def subscribers_export(
    file: Annotated[Path, typer.Argument(help="CSV file to write; - for standard output")],
    settings_file: SettingsOption = None,
) -> None:
    """Export every subscriber as CSV (the import format)."""
    _export_csv(file, _audience(settings_file).export_csv, "subscribers")


@subscribers_app.command("remove")
def subscribers_remove(
    address: Annotated[str, typer.Argument(help="the email address")],
    erase: Annotated[
        bool,
        typer.Option("--erase", help="forget the address everywhere: subscriber, consent, ledger, outbox and preview files"),
    ] = False,
    settings_file: SettingsOption = None,
) -> None:
    """Unsubscribe an address (it is never emailed again); --erase forgets it entirely (a bounce stays suppressed as a hash)."""
    from pressroom.audience import erase as erase_address

    settings = _settings(settings_file)
    if erase:
        done = erase_address(settings=settings, address=address)
    else:
        done = _audience(settings_file).remove(address=address, now=datetime.now(UTC), source="cli")
    if not done:
        err.print(f"[red]error:[/red] {address} is not a subscriber")
        raise typer.Exit(1)
    console.print(f"{'erased' if erase else 'unsubscribed'} {address}")


@subscribers_app.command("list")
def subscribers_list(
    status: Annotated[Optional[str], typer.Option(help="only pending, confirmed or unsubscribed")] = None,
    settings_file: SettingsOption = None,
) -> None:
    """List subscribers, tab-separated: address, status, cadence, topics (* = everything), name."""
    count = 0
    for sub in _audience(settings_file).list(status=status):
        typer.echo(f"{sub.address}\t{sub.status}\t{sub.cadence}\t{';'.join(sub.topics) or '*'}\t{sub.name}")
        count += 1
    err.print(f"{count} subscribers")


journalists_app = typer.Typer(no_args_is_help=True, help="The media list: add, import, export, remove, list, report.")
app.add_typer(journalists_app, name="journalists")


def _media(settings_file: Path | None):
    from pressroom.audience import MediaList

    return MediaList.from_settings(_settings(settings_file))


@journalists_app.command("add")
def journalists_add(
    address: Annotated[str, typer.Argument(help="the email address")],
    name: Annotated[str, typer.Option(help="how the emails greet them")] = "",
    outlet: Annotated[str, typer.Option(help="the newspaper, broadcaster or agency")] = "",
    beat: Annotated[Optional[list[str]], typer.Option("--beat", help="a tag they cover (repeat it); none = every release")] = None,
    language: Annotated[Optional[str], typer.Option(help="language tag, default: the site's")] = None,
    country: Annotated[str, typer.Option(help="two-letter country code, e.g. BE")] = "",
    settings_file: SettingsOption = None,
) -> None:
    """Add one journalist to the media list (legitimate interest: no confirmation; every email has a one-click opt-out)."""
    journalist = _media(settings_file).add(address=address, name=name, outlet=outlet, beats=beat or [], language=language,
                                           country=country, now=datetime.now(UTC))
    console.print(f"added {journalist.address} ({journalist.outlet or 'no outlet'}, beats: {', '.join(journalist.beats) or 'everything'})")


@journalists_app.command("import")
def journalists_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header: address[,name,outlet,beats,language,country]")],
    settings_file: SettingsOption = None,
) -> None:
    """Import journalists from CSV; each bad row or duplicate is reported with its line and skipped."""
    _import_csv(file, lambda: _media(settings_file).import_csv(file=file, now=datetime.now(UTC)))


@journalists_app.command("export")
def journalists_export(
    file: Annotated[Path, typer.Argument(help="CSV file to write; - for standard output")],
    settings_file: SettingsOption = None,
) -> None:
    """Export the media list as CSV (the import format)."""
    _export_csv(file, _media(settings_file).export_csv, "journalists")


@journalists_app.command("remove")
def journalists_remove(
    address: Annotated[str, typer.Argument(help="the email address")],
    settings_file: SettingsOption = None,
) -> None:
    """Take a journalist off the media list."""
    if not _media(settings_file).remove(address=address):
        err.print(f"[red]error:[/red] {address} is not on the media list")
        raise typer.Exit(1)
    console.print(f"removed {address}")


@journalists_app.command("list")
def journalists_list(settings_file: SettingsOption = None) -> None:
    """List the media list, tab-separated: address, outlet, beats (* = everything), language, country, name."""
    journalists = _media(settings_file).list()
    for j in journalists:
        typer.echo(f"{j.address}\t{j.outlet}\t{';'.join(j.beats) or '*'}\t{j.language}\t{j.country}\t{j.name}")
    err.print(f"{len(journalists)} journalists")


@journalists_app.command("report")
def journalists_report(
    slug: Annotated[str, typer.Argument(help="the release slug")],
    settings_file: SettingsOption = None,
) -> None:
    """Who got the embargoed email of a release, and who opened the preview (how often, first and last time)."""
    from pressroom.dispatch.embargo import CHANNEL
    from pressroom.ledger import Ledger

    settings = _settings(settings_file)
    zone = settings.site.tz
    states = Ledger.from_settings(settings).states(release=slug, channel=CHANNEL)
    opens = {journalist.address: (count, first, last) for journalist, count, first, last in _media(settings_file).opens(release=slug)}
    for address in sorted(set(states) | set(opens)):
        count, first, last = opens.get(address, (0, None, None))
        seen = f"opened {count}x, first {first.astimezone(zone):%Y-%m-%d %H:%M %Z}, last {last.astimezone(zone):%Y-%m-%d %H:%M %Z}" \
            if first and last else "not opened"
        typer.echo(f"{address}\t{states.get(address, 'not emailed')}\t{seen}")
    err.print(f"{len(states)} emailed, {len(opens)} opened the preview")


@deliveries_app.command("report")
def deliveries_report(
    release: Annotated[Optional[str], typer.Option(help="one release slug (or digest key)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="email, social:mastodon:default, or a prefix ending in ':'")] = None,
    settings_file: SettingsOption = None,
) -> None:
    """Counts per state (sent, deferred, failed, suppressed, ambiguous, pending) and the rows that need a look."""
    from pressroom.ledger import Ledger

    report = Ledger.from_settings(_settings(settings_file)).report(release=release, channel=channel, problems=1000)
    console.print(report.as_text(), markup=False, soft_wrap=True)
    for slug, recipient, state, answer in report.problems:
        console.print(f"  {state:<10} {slug}  {recipient}  {answer}", markup=False, soft_wrap=True)
    for slug, recipient, state, answer in Ledger.from_settings(_settings(settings_file)).conflicts(release=release, channel=channel):
        console.print(f"  conflict   {slug}  {recipient}  a sender that no longer held the row reported {state}: {answer}",
                      markup=False, soft_wrap=True)


@deliveries_app.command("retry")
def deliveries_retry(
    ambiguous: Annotated[bool, typer.Option("--ambiguous", help="resend rows whose fate is unknown (some may have arrived)")] = False,
    release: Annotated[Optional[str], typer.Option(help="only this release slug (or digest key)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="only this channel")] = None,
    settings_file: SettingsOption = None,
) -> None:
    """Put ambiguous deliveries back in the queue; the next publish (or digest) run sends them."""
    from pressroom.ledger import Ledger

    if not ambiguous:
        err.print("[red]error:[/red] say what to retry: --ambiguous")
        raise typer.Exit(2)
    ledger = Ledger.from_settings(_settings(settings_file))
    rows = ledger.ambiguous(release=release, channel=channel)
    for slug, chan, recipient in rows:
        console.print(f"  {slug}  {chan}  {recipient}", markup=False)
    count, live = ledger.retry_ambiguous(release=release, channel=channel, now=datetime.now(UTC))
    console.print(f"{count} ambiguous deliveries will be sent again on the next run")
    if live:
        console.print(f"{live} deliveries are in flight in a sender that is still running: left alone (not ambiguous)")


@deliveries_app.command("bounces")
def deliveries_bounces(
    maildir: Annotated[Path, typer.Argument(help="the Maildir the return-path mailbox is synced to")],
    settings_file: SettingsOption = None,
) -> None:
    """Read bounce reports (RFC 3464) and complaints from a Maildir; hard bounces are suppressed."""
    from pressroom.audience import Audience
    from pressroom.bounces import scan_maildir
    from pressroom.ledger import Ledger

    settings = _settings(settings_file)
    report = scan_maildir(path=maildir, audience=Audience.from_settings(settings), ledger=Ledger.from_settings(settings),
                          now=datetime.now(UTC))
    for address in report.suppressed:
        console.print(f"  suppressed  {address}", markup=False)
    for problem in report.problems:
        err.print(f"  skipped     {problem}", markup=False, soft_wrap=True)
    console.print(report.as_text())


def main() -> None:
    """Entry point of the ``pressroom`` script."""
    try:
        app()
    except PressroomError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        # A server away (the database, SMTP) is a failed run, 1; wrong settings or usage, 2.
        sys.exit(1 if isinstance(exc, TransientError) else 2)


@app.command()
def serve(
    settings_file: SettingsOption = None,
    host: Annotated[Optional[str], typer.Option(help="address to listen on (default: [web] host)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port to listen on (default: [web] port)")] = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = True,
) -> None:
    """Serve public/ and the subscription pages (subscribe, confirm, unsubscribe, preferences, data)."""
    from pressroom.web import serve as serve_web

    settings = _settings(settings_file)
    routes = []
    if settings.email.editors:
        # The proof's Approve/Reject links resume paused runs on the Prefect API the flows use,
        # signed with the secret the flows sign with (a Secret block, when there is one).
        from flows.ops import resolve_secrets, use_local_server

        if use_local_server(settings):
            settings = resolve_secrets(settings)
        from flows.approval import approval_routes

        routes = approval_routes(settings=settings)
    console.print(f"serving {settings.path('public')} and the subscription pages on http://{host or settings.web.host}:{port or settings.web.port}/")
    serve_web(settings=settings, host=host, port=port, access_log=access_log, extra_routes=routes)
