"""The delivery ledger: report, retry, bounces."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from pressroom.cli.base import SettingsOption, app, console, err, open_settings

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
    release: Annotated[Optional[str], typer.Option(help="only this release slug (or digest key)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="only this channel")] = None,
    settings_file: SettingsOption = None,
) -> None:
    """Put ambiguous deliveries back in the queue; the next publish (or digest) run sends them."""
    from pressroom.ledger import Ledger

    if not ambiguous:
        err.print("[red]error:[/red] say what to retry: --ambiguous")
        raise typer.Exit(2)
    ledger = Ledger.from_settings(open_settings(settings_file))
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

    settings = open_settings(settings_file)
    report = scan_maildir(path=maildir, audience=Audience.from_settings(settings), ledger=Ledger.from_settings(settings),
                          now=datetime.now(UTC))
    for address in report.suppressed:
        console.print(f"  suppressed  {address}" + ("  (spam complaint)" if address in report.complaints else ""), markup=False)
    for problem in report.problems:
        err.print(f"  skipped     {problem}", markup=False, soft_wrap=True)
    console.print(report.as_text())
