"""``pressroom report``: what each release reached, and the EU projects' communication activities."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

import typer

from pressroom.cli.base import (
    NowOption,
    SettingsOption,
    app,
    console,
    err,
    open_settings,
    parse_now,
)

EDITORS_LINK_DAYS = 14


class Format(StrEnum):
    md = "md"
    csv = "csv"
    json = "json"


@app.command("report")
def report(
    period: Annotated[str | None, typer.Option(help="2026, 2026-Q4 or 2026-11 (default: every release)")] = None,
    format: Annotated[Format, typer.Option("--format", help="md (for people), csv or json")] = Format.md,
    eu: Annotated[bool, typer.Option("--eu", help="the EU projects' communication activities (Funding & Tenders portal)")] = False,
    project: Annotated[str | None, typer.Option(help="with --eu: one co-issuer's id or grant number")] = None,
    link: Annotated[bool, typer.Option("--link", help="print the editors' link to this report on the site (good for 14 days)")] = False,
    settings_file: SettingsOption = None,
    now: NowOption = None,
) -> None:
    """Reach per release and language: emails delivered, unsubscribes, link clicks (people and machines
    apart), journalists, social posts. Also written as a page with charts under var/reports/.

    Counts are aggregate: no reader is tracked. With --eu, a CSV per the portal's questionnaire and a summary.
    """
    from pressroom import reach
    from pressroom.releases import load_releases

    settings = open_settings(settings_file)
    try:
        chosen = None if period is None else reach.Period.parse(period, tz=settings.site.tz)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True)
        raise typer.Exit(2) from None
    if link:
        from pressroom.tokens import report_url

        console.print(report_url(settings=settings, period=chosen.label if chosen else "all",
                                 expires=parse_now(now) + timedelta(days=EDITORS_LINK_DAYS)), markup=False)
        return
    made = reach.build_report(settings=settings, releases=load_releases(settings).releases, period=chosen, now=parse_now(now))
    if eu:
        rows = reach.eu_rows(made, project=project)
        folder = settings.path("var") / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"eu-{made.period}{'-' + project if project else ''}.csv"
        path.write_text(reach.eu_csv(rows), encoding="utf-8")
        console.print(reach.eu_csv(rows) if format is Format.csv else reach.eu_summary(rows, period=made.period),
                      markup=False, end="")
        err.print(f"{len(rows)} {'activity' if len(rows) == 1 else 'activities'} written to {path}", markup=False)
        return
    text = {Format.md: reach.as_markdown, Format.csv: reach.as_csv, Format.json: reach.as_json}[format](made)
    console.print(text, markup=False, end="")
    err.print(f"page with charts: {reach.write_html(made, settings=settings)}", markup=False)
