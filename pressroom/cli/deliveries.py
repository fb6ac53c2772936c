"""The delivery ledger: report, retry, bounces."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from pressroom.cli.base import SettingsOption, app, console, err, open_settings

if TYPE_CHECKING:
    from pressroom.settings import Settings

deliveries_app = typer.Typer(no_args_is_help=True, help="What was sent to whom: report, resend after a crash, read bounces.")
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.command("report")
def deliveries_report(
    release: Annotated[Optional[str], typer.Option(help="one release slug (or digest key)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="email, social:mastodon:default, or a prefix ending in ':'")] = None,
    settings_file: SettingsOption = None,
) -> None:
    """Counts per state (sent, deferred, failed, suppressed, ambiguous, pending) and the rows that need a look."""
    from collections import Counter

    from pressroom.bounces import complaint_rate_line, explain
    from pressroom.ledger import Ledger

    report = Ledger.from_settings(open_settings(settings_file)).report(release=release, channel=channel, problems=1000)
    console.print(report.as_text(), markup=False, soft_wrap=True)
    # The providers' policy refusals, grouped: what each means for the sender and what to do.
    causes: Counter[str] = Counter()
    for slug, recipient, state, answer in report.problems:
        console.print(f"  {state:<10} {slug}  {recipient}  {answer}", markup=False, soft_wrap=True)
        why = explain(answer)
        if why is not None:
            causes[why.line()] += 1
    for line, count in causes.most_common():
        err.print(f"refused    {count} x {line}", markup=False, soft_wrap=True)
    for slug, recipient, state, answer in Ledger.from_settings(open_settings(settings_file)).conflicts(release=release, channel=channel):
        console.print(f"  conflict   {slug}  {recipient}  a sender that no longer held the row reported {state}: {answer}",
                      markup=False, soft_wrap=True)
    for slug, complaints, delivered in Ledger.from_settings(open_settings(settings_file)).complaint_rates(release=release, channel=channel):
        line, alarming = complaint_rate_line(release=slug, complaints=complaints, delivered=delivered)
        (err if alarming else console).print(f"complaints {line}", markup=False, soft_wrap=True)


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
    if not (ambiguous or states):
        err.print("[red]error:[/red] say what to retry: --failed, --expired or --ambiguous")
        raise typer.Exit(2)
    settings = open_settings(settings_file)
    after = _since(since, settings) if since is not None else None
    if ambiguous and after is not None:
        err.print("[red]error:[/red] --since applies to --failed and --expired; an ambiguous row has no end to date it from")
        raise typer.Exit(2)
    ledger = Ledger.from_settings(settings)
    rows = ledger.ambiguous(release=release, channel=channel) if ambiguous else []
    for slug, chan, recipient in rows:
        console.print(f"  {slug}  {chan}  {recipient}", markup=False)
    count = ledger.retryable(states=states, release=release, channel=channel, since=after) if states else 0
    what = " and ".join([*states, *(["ambiguous"] if ambiguous else [])])
    scope = " ".join(part for part in (release, channel, f"since {after:%Y-%m-%d %H:%M %Z}" if after else "") if part)
    if (count or rows) and not yes:
        console.print(f"{count + len(rows)} {what} deliveries{' of ' + scope if scope else ''} will be queued again"
                      + (f" ({len(rows)} ambiguous: some of these readers may already have the email)" if rows else ""),
                      markup=False)
        if not typer.confirm("Send them again?"):
            console.print("nothing changed")
            raise typer.Exit(1)
    now = datetime.now(UTC)
    if states:
        queued = ledger.retry(states=states, release=release, channel=channel, since=after, now=now)
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
