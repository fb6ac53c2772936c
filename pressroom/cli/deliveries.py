"""The delivery ledger: report, list, find, retry, bounces."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from pressroom.cli.base import SettingsOption, app, console, err, open_settings

if TYPE_CHECKING:
    from pressroom.ledger import Ledger
    from pressroom.ledger.reports import Group, Reports, Row
    from pressroom.settings import Settings

deliveries_app = typer.Typer(no_args_is_help=True, help="What was sent to whom: report, list, find, send again (after a crash, an outage or a refusal), read bounces.")
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.command("report")
def deliveries_report(
    release: Annotated[Optional[str], typer.Option(help="one release slug (or digest key)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="email, social:mastodon:default, or a prefix ending in ':'")] = None,
    settings_file: SettingsOption = None,
) -> None:
    """Counts per channel and reader language; each state that needs a look, in words, with what to do next."""
    from pressroom.ledger.reports import Reports

    settings = open_settings(settings_file)
    reports = Reports.from_settings(settings)
    now = datetime.now(UTC)
    groups = reports.overview(release=release, channel=channel, now=now)
    if not groups:
        console.print("no deliveries" + (f" for {' '.join(filter(None, (release, channel)))}" if release or channel else ""))
    _print_counts(groups)
    scope = "".join(f" --{name} {value}" for name, value in (("release", release), ("channel", channel)) if value)
    totals: Counter[str] = Counter()
    for group in groups:
        totals.update(group.counts)
    for state in _NEEDS_A_LOOK:
        if totals[state]:
            _print_state(reports, state, totals[state], release=release, channel=channel, scope=scope, now=now,
                         zone=settings.site.tz)
    _print_history(reports, release=release, channel=channel, zone=settings.site.tz)
    _print_complaints(reports, release=release, channel=channel)


# The states a report lists row by row, in this order; the others are counts only.
_NEEDS_A_LOOK = ("ambiguous", "sender gone", "in flight", "deferred", "expired", "failed", "suppressed")
_SHOWN = 20  # rows per state in a report; `deliveries list --state` gives them all


def _print_counts(groups: list[Group]) -> None:
    from pressroom.ledger.reports import LABELS

    for slug in dict.fromkeys(group.release for group in groups):
        console.print(slug or "emails of no release (subscriptions, staff)", markup=False)
        mine = [group for group in groups if group.release == slug]
        names = [group.channel + (f" ({group.language})" if group.language else "") for group in mine]
        width = max(map(len, names))
        for name, group in zip(names, mine, strict=True):
            counts = ", ".join(f"{group.counts[state]} {state}" for state in LABELS if group.counts.get(state))
            console.print(f"  {name:<{width}}  {counts}", markup=False)


def _print_state(reports: Reports, state: str, count: int, *, release: str | None, channel: str | None, scope: str,
                 now: datetime, zone: tzinfo) -> None:
    from pressroom.ledger.reports import MEANING

    rows, causes = _read_state(reports, state, release=release, channel=channel, now=now)
    meaning = MEANING[state]
    if state == "ambiguous":
        arrived, resent = reports.resends_arrived()
        # Only a late answer tells that a first copy arrived: for a sender killed mid-send nothing
        # ever does, so this is a floor, and said as one.
        meaning += "; retrying sends it again to those who got it: " + (
            f"{arrived} of the last {resent} such rows had arrived (known from a late answer; of the others nobody can tell)"
            if resent else "how many had arrived is not known yet (no ambiguous row was resent before)")
    console.print(f"\n{state} {count}: {meaning}", markup=False)
    step = _next_step(state, rows, scope=scope, now=now)
    if step:
        console.print(f"  next: {step}", markup=False)
    for row in rows:
        console.print(f"  {row.release}  {row.channel}  {row.recipient}  {_detail(row, now=now, zone=zone)}", markup=False)
    if count > len(rows):
        console.print(f"  ... and {count - len(rows)} more: pressroom deliveries list{scope} --state '{state}'", markup=False)
    # The providers' policy refusals, grouped: what each means for the sender and what to do.
    for line, times in causes.most_common():
        err.print(f"refused    {times} x {line}", markup=False)


def _read_state(reports: Reports, state: str, *, release: str | None, channel: str | None,
                now: datetime) -> tuple[list[Row], Counter[str]]:
    """The first rows of ``state`` to show, and the providers' refusals among all of them (failed and deferred only)."""
    from pressroom.mail.answers import explain

    refusals = state in ("failed", "deferred")
    shown: list[Row] = []
    causes: Counter[str] = Counter()
    for row in reports.rows(release=release, channel=channel, state=state, now=now, limit=None if refusals else _SHOWN):
        if len(shown) < _SHOWN:
            shown.append(row)
        why = explain(row.response) if refusals else None
        if why is not None:
            causes[why.line()] += 1
    return shown, causes


def _next_step(state: str, rows: list[Row], *, scope: str, now: datetime) -> str:
    if state == "ambiguous":
        return f"only if a second copy is better than none: pressroom deliveries retry --ambiguous{scope}"
    if state == "sender gone":
        wait = max(row.seconds_left(now) for row in rows)
        sending = sum(row.sending for row in rows)
        return f"run again after {wait} s, when its lease runs out" + (
            f" ({sending} it was sending become ambiguous then: decide with pressroom deliveries retry --ambiguous{scope})"
            if sending else "")
    if state == "in flight":
        return "nothing: its sender is running and finishes them"
    if state == "deferred":
        return "nothing: the next run after the time shown tries again"
    if state == "expired":
        return f"once the server is back: pressroom deliveries retry --expired{scope}"
    if state == "failed":
        return f"fix the cause the answer names, then: pressroom deliveries retry --failed{scope}"
    return ""


def _detail(row: Row, *, now: datetime, zone: tzinfo) -> str:
    """What one row needs said beside its address: who holds it, when it is tried next, the server's answer."""
    held = f"{row.sender.host}, pid {row.sender.pid}" if row.sender else "a sender"
    if row.state == "in flight":
        return f"held by {held}, lease until {_when(row.lease_until, zone)}"
    if row.state == "sender gone":
        return f"held by {held}, which is not running; due again in {row.seconds_left(now)} s"
    if row.state == "deferred":
        return f"{row.response or 'no answer'}; next try {_when(row.next_attempt_at, zone)}"
    if row.state == "ambiguous" and not row.response:
        return "its sender stopped while sending it (no answer recorded)"
    return row.response


def _when(moment: datetime | None, zone: tzinfo) -> str:
    return "-" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"


def _print_history(reports: Reports, *, release: str | None, channel: str | None, zone: tzinfo) -> None:
    events = reports.history(release=release, channel=channel)
    if events:
        console.print("\nhistory (kept after the counts settle):", markup=False)
    for event in events:
        console.print(f"  {_when(event.at, zone)}  {event.release}  {event.channel}  {event.recipient}  {event.what}",
                      markup=False)


def _print_complaints(reports: Reports, *, release: str | None, channel: str | None) -> None:
    from pressroom.bounces import complaint_rate_line

    for slug, complaints, delivered in reports.complaint_rates(release=release, channel=channel):
        line, alarming = complaint_rate_line(release=slug, complaints=complaints, delivered=delivered)
        (err if alarming else console).print(f"complaints {line}", markup=False)


_COLUMNS = ("release", "channel", "language", "recipient", "state", "attempts", "updated", "answer")


@deliveries_app.command("list")
def deliveries_list(
    release: Annotated[Optional[str], typer.Option(help="the release slug (or digest key); without it, every release")] = None,
    channel: Annotated[Optional[str], typer.Option(help="only this channel, or a prefix ending in ':'")] = None,
    state: Annotated[Optional[str], typer.Option(help="only rows in this state, as the report names it (e.g. failed, 'in flight')")] = None,
    output: Annotated[str, typer.Option("--format", help="text (tab-separated) or csv")] = "text",
    settings_file: SettingsOption = None,
) -> None:
    """Who got a release, one row per delivery: channel, reader language, address, state, attempts, last change, answer."""
    from pressroom.ledger.reports import LABELS, Reports

    if state is not None and state not in LABELS:
        err.print(f"[red]error:[/red] --state {state!r}: say one of {', '.join(LABELS)}", markup=True)
        raise typer.Exit(2)
    _check_format(output)
    rows = Reports.from_settings(open_settings(settings_file)).rows(release=release, channel=channel, state=state)
    count = _write_rows(rows, csv_format=output == "csv")
    err.print(f"{count} deliveries", markup=False)


@deliveries_app.command("find")
def deliveries_find(
    address: Annotated[str, typer.Argument(help="the email address")],
    output: Annotated[str, typer.Option("--format", help="text (tab-separated) or csv")] = "text",
    settings_file: SettingsOption = None,
) -> None:
    """Every send to one address, across releases and channels (did she get it?); an erased address finds nothing."""
    from pressroom.audience import AddressError, normalise_address
    from pressroom.ledger.reports import Reports

    _check_format(output)
    try:
        clean = normalise_address(address)
    except AddressError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=False)
        raise typer.Exit(2) from None
    found = _write_rows(Reports.from_settings(open_settings(settings_file)).rows(address=clean), csv_format=output == "csv")
    if not found:
        err.print(f"nothing was sent to {clean} (or it was erased: the ledger keeps no address of an erased person)", markup=False)
        raise typer.Exit(1)


def _check_format(output: str) -> None:
    if output not in ("text", "csv"):
        err.print(f"[red]error:[/red] --format {output!r}: say text or csv")
        raise typer.Exit(2)


def _write_rows(rows: Iterable[Row], *, csv_format: bool) -> int:
    """Rows to standard output, tab-separated or as CSV with a header; returns how many."""
    import csv

    writer = csv.writer(sys.stdout) if csv_format else csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    if csv_format:
        writer.writerow(_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow((row.release, row.channel, row.language, row.recipient, row.state, row.attempts,
                         row.updated_at.isoformat(timespec="seconds"), " ".join(row.response.split())))
        count += 1
    return count


@deliveries_app.command("retry")
def deliveries_retry(
    ambiguous: Annotated[bool, typer.Option("--ambiguous", help="resend rows whose fate is unknown (some may have arrived)")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="send failed rows again (a server's refusal, fixed since)")] = False,
    expired: Annotated[bool, typer.Option("--expired", help="send again rows that waited too long for a server that was down")] = False,
    release: Annotated[Optional[str], typer.Option(help="only this release slug (or digest key)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="only this channel (email, transactional, ...)")] = None,
    since: Annotated[Optional[str], typer.Option(help="only rows that failed or expired since: 2h, 3d, or an ISO date or time")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation (scripts)")] = False,
    settings_file: SettingsOption = None,
) -> None:
    """Put deliveries back in the queue on purpose; the next publish (or digest) run sends them.

    Failed and expired rows start afresh (their attempts reset); an address suppressed since (a hard bounce, a complaint, an unsubscribe) is still held back. Ambiguous rows may have arrived: a resend can reach some readers twice, and a sender that is still running keeps its own.
    """
    from pressroom.ledger import Ledger

    states = [state for state, asked in (("failed", failed), ("expired", expired)) if asked]
    settings = open_settings(settings_file)
    after = _retry_since(states=states, ambiguous=ambiguous, since=since, settings=settings)
    ledger = Ledger.from_settings(settings)
    rows = ledger.ambiguous(release=release, channel=channel) if ambiguous else []
    for slug, chan, recipient in rows:
        console.print(f"  {slug}  {chan}  {recipient}", markup=False)
    count = ledger.retryable(states=states, release=release, channel=channel, since=after) if states else 0
    if (count or rows) and not yes:
        _confirm(count=count, ambiguous=len(rows), states=states, scope=(release, channel, after))
    _requeue(ledger, states=states, ambiguous=ambiguous, release=release, channel=channel, since=after)


def _confirm(*, count: int, ambiguous: int, states: list[str], scope: tuple[str | None, str | None, datetime | None]) -> None:
    """Say what a retry would queue again and stop unless the operator agrees."""
    release, channel, after = scope
    what = " and ".join([*states, *(["ambiguous"] if ambiguous else [])])
    where = " ".join(part for part in (release, channel, f"since {after:%Y-%m-%d %H:%M %Z}" if after else "") if part)
    console.print(f"{count + ambiguous} {what} deliveries{' of ' + where if where else ''} will be queued again"
                  + (f" ({ambiguous} ambiguous: some of these readers may already have the email)" if ambiguous else ""),
                  markup=False)
    if not typer.confirm("Send them again?"):
        console.print("nothing changed")
        raise typer.Exit(1)


def _retry_since(*, states: list[str], ambiguous: bool, since: str | None, settings: Settings) -> datetime | None:
    """The instant ``--since`` names, after checking that the options ask for something that can be retried."""
    if not (ambiguous or states):
        err.print("[red]error:[/red] say what to retry: --failed, --expired or --ambiguous")
        raise typer.Exit(2)
    if since is None:
        return None
    if ambiguous:
        err.print("[red]error:[/red] --since applies to --failed and --expired; an ambiguous row has no end to date it from")
        raise typer.Exit(2)
    return _since(since, settings)


def _requeue(ledger: Ledger, *, states: list[str], ambiguous: bool, release: str | None, channel: str | None,
             since: datetime | None) -> None:
    now = datetime.now(UTC)
    if states:
        queued = ledger.retry(states=states, release=release, channel=channel, since=since, now=now)
        console.print(f"{queued} {' and '.join(states)} deliveries will be sent again on the next run", markup=False)
    if ambiguous:
        queued, live = ledger.retry_ambiguous(release=release, channel=channel, now=now)
        console.print(f"{queued} ambiguous deliveries will be sent again on the next run")
        if live:
            console.print(f"{live} deliveries are in flight in a sender that is still running: left alone (not ambiguous)")


def _since(value: str, settings: Settings) -> datetime:
    import re
    from datetime import timedelta

    found = re.fullmatch(r"(\d+)\s*([mhd])", value.strip())
    if found:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(found.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"[red]error:[/red] --since {value!r}: write 2h, 3d, a date (2026-12-07) or a time with an offset")
        raise typer.Exit(2) from None
    # A date or a time without an offset is the site's local time, as everywhere else in Pressroom.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=settings.site.tz)


@deliveries_app.command("bounces")
def deliveries_bounces(
    maildir: Annotated[Path, typer.Argument(help="the Maildir the return-path mailbox is synced to")],
    settings_file: SettingsOption = None,
) -> None:
    """Read bounce reports (RFC 3464) and complaints from a Maildir; hard bounces are suppressed."""
    from pressroom.audience import Audience
    from pressroom.bounces import scan_maildir
    from pressroom.ledger import Ledger

    settings = open_settings(settings_file)
    report = scan_maildir(path=maildir, audience=Audience.from_settings(settings), ledger=Ledger.from_settings(settings),
                          now=datetime.now(UTC))
    for address in report.suppressed:
        console.print(f"  suppressed  {address}" + ("  (spam complaint)" if address in report.complaints else ""), markup=False)
    for problem in report.problems:
        err.print(f"  skipped     {problem}", markup=False, soft_wrap=True)
    console.print(report.as_text())
