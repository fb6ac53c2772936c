"""The subscribers and the media list: add, import, export, remove, list, report."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from pressroom.cli.base import SettingsOption, app, console, err, open_settings

if TYPE_CHECKING:
    from pressroom.audience import ImportReport

subscribers_app = typer.Typer(no_args_is_help=True, help="Subscribers: add, import, export, remove, list.")
app.add_typer(subscribers_app, name="subscribers")



def _audience(settings_file: Path | None):
    from pressroom.audience import Audience

    return Audience.from_settings(open_settings(settings_file))


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

    settings = open_settings(settings_file)
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

    return MediaList.from_settings(open_settings(settings_file))


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
    """Who got the embargoed email of a release (in the words of `deliveries report`), and who opened the preview."""
    from collections import Counter

    from pressroom.dispatch.embargo import CHANNEL
    from pressroom.ledger.reports import LABELS, Reports

    settings = open_settings(settings_file)
    zone = settings.site.tz
    states = {row.recipient: row.state for row in Reports.from_settings(settings).rows(release=slug, channel=CHANNEL)}
    opens = {journalist.address: (count, first, last) for journalist, count, first, last in _media(settings_file).opens(release=slug)}
    for address in sorted(set(states) | set(opens)):
        count, first, last = opens.get(address, (0, None, None))
        seen = f"opened {count}x, first {first.astimezone(zone):%Y-%m-%d %H:%M %Z}, last {last.astimezone(zone):%Y-%m-%d %H:%M %Z}" \
            if first and last else "not opened"
        typer.echo(f"{address}\t{states.get(address, 'not emailed')}\t{seen}")
    counted = Counter(states.values())
    emailed = ", ".join(f"{counted[state]} {state}" for state in LABELS if counted[state]) or "none emailed"
    err.print(f"{emailed}; {len(opens)} opened the preview")
