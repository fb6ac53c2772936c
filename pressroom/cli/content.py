"""Commands about release files: check, build, preview."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional
from zoneinfo import ZoneInfo

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
from pressroom.errors import PressroomError
from pressroom.settings import Settings

if TYPE_CHECKING:  # the commands import what they use when they run: `pressroom --help` stays quick
    from pressroom.mail.preview import PreviewFiles
    from pressroom.releases.model import LoadResult, Release


@app.command()
def check(
    path: Annotated[Optional[Path], typer.Argument(help="one release file or folder (default: all of content/releases)")] = None,
    settings_file: SettingsOption = None,
    now: NowOption = None,
) -> None:
    """Check releases: one line per problem (file, line, field, what to do), then each valid release and when it goes out."""
    from pressroom.releases.loading import load_releases

    settings = open_settings(settings_file)
    moment = parse_now(now)
    result = load_releases(settings, path=path)
    for problem in sorted([*result.problems, *result.warnings], key=lambda found: (str(found.path), found.line or 1)):
        console.print(problem.line_for_humans(Path.cwd()), markup=False, soft_wrap=True)
    # Only the whole folder tells a deleted release from one not checked. With the embedded
    # database not created yet nothing was ever published: a check does not create it.
    if path is None and (settings.database_url or settings.embedded_database.exists()):
        for line in _reminders(settings, result, moment):
            console.print(line, markup=False, soft_wrap=True)
    for release in sorted(result.releases, key=lambda r: r.date):
        for line in _release_lines(release, moment, settings.site.tz):
            console.print(line, markup=False, soft_wrap=True)
    total = len(result.releases) + len(result.problems)
    summary = f"{len(result.releases)} of {total} releases valid"
    if result.problems:
        err.print(f"[red]{summary}; {len(result.problems)} with problems[/red]")
        raise typer.Exit(1)
    console.print(summary)


def _reminders(settings: Settings, result: LoadResult, moment: datetime) -> list[str]:
    """What ``check`` reminds about published releases (a silent edit, a deleted file)."""
    from pressroom.dispatch.after import reminders
    from pressroom.ledger import Ledger

    try:
        return reminders(loaded=result, ledger=Ledger.from_settings(settings), now=moment, root=Path.cwd())
    except PressroomError as exc:  # the files are checked all the same; only what was published is unknown
        return [f"reminders about published releases skipped: {exc}"]


def _release_lines(release: Release, moment: datetime, zone: ZoneInfo) -> list[str]:
    """A valid release's line: its state and its publication instant in UTC and the site time zone (and its embargo's),
    then what each of its language versions writes and takes from index.md."""
    from pressroom.releases.languages import describe

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
    lines = [f"ok  {release.slug}  {state:<9}  {utc} = {local}{versions}"]
    if release.embargo is not None:
        notify = release.embargo.notify
        lines.append(f"    embargo: journalists hear of it at {notify.astimezone(UTC):%Y-%m-%d %H:%M UTC} = "
                     f"{notify.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    return lines + describe(release)


@app.command()
def build(settings_file: SettingsOption = None, now: NowOption = None) -> None:
    """Build the website and its feeds in public/ from the releases that are due; only changed files are rewritten."""
    from pressroom.releases.loading import load_releases
    from pressroom.site.build import build_site

    settings = open_settings(settings_file)
    result = load_releases(settings)
    for problem in result.problems:
        err.print(f"[yellow]skipped:[/yellow] {problem.line_for_humans(Path.cwd())}", soft_wrap=True)
    for warning in result.warnings:
        err.print(warning.line_for_humans(Path.cwd()), markup=False, soft_wrap=True)
    report = build_site(settings=settings, releases=result.releases, now=parse_now(now))
    console.print(
        f"public/: {report.pages} pages; wrote {len(report.written)}, unchanged {report.unchanged}, "
        f"removed {len(report.removed)} ({settings.path('public')})"
    )



def _preview_social(settings: Settings, slug: str) -> None:
    """Print every social post of a release with its count; nothing is sent."""
    from pressroom.releases.loading import load_releases
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
        use_local_prefect(settings)
        from flows.approval import email_approved

        return email_approved(release=release, settings=settings)

    return approved


def _digest_preview(settings: Settings, now: datetime, language: str, *, shots: bool) -> PreviewFiles:
    """The digest the digest flow would send at ``now``: the same period and selection
    (:func:`pressroom.dispatch.digest_releases`), with the editors' decisions."""
    from pressroom.dispatch import digest_period, digest_releases
    from pressroom.ledger import Ledger
    from pressroom.mail.preview import write_digest_preview
    from pressroom.releases.loading import load_releases

    start, end = digest_period(now=now, settings=settings)
    chosen = digest_releases(releases=load_releases(settings).releases, settings=settings, now=now,
                             first_seen=Ledger.from_settings(settings).first_published(), approved=_approval_reader(settings))
    return write_digest_preview(settings=settings, releases=chosen, period_start=start, period_end=end, language=language,
                                shots=shots)


@app.command()
def preview(
    slug: Annotated[Optional[str], typer.Argument(help="the release to preview, by its slug (drafts too)")] = None,
    digest: Annotated[bool, typer.Option("--digest", help="preview the weekly digest the digest flow would send at --now")] = False,
    no_screenshots: Annotated[bool, typer.Option("--no-screenshots", help="skip the Chromium PNGs")] = False,
    social: Annotated[bool, typer.Option("--social", help="show the release's social posts with their counts instead")] = False,
    language: Annotated[str, typer.Option("--language", help="the email a reader of this language gets (e.g. de)")] = "",
    settings_file: SettingsOption = None,
    now: NowOption = None,
) -> None:
    """See a release's email before it goes out: HTML, text and screenshots (phone, wide, dark) in var/preview/."""
    from rich.markup import escape

    from pressroom.mail.preview import write_preview

    if digest == (slug is not None):
        err.print("[red]error:[/red] give a release SLUG or --digest (one of the two)")
        raise typer.Exit(2)
    settings = open_settings(settings_file)
    if social:
        _preview_social(settings, slug or "")
        return
    try:
        if digest:
            files = _digest_preview(settings, parse_now(now), language, shots=not no_screenshots)
        else:
            files = write_preview(settings=settings, slug=slug, shots=not no_screenshots, language=language)
    except PressroomError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    for path in files.all():
        console.print(str(path), markup=False, soft_wrap=True)
