"""The reach report for people and machines: Markdown, CSV, JSON, and a page with a chart per release."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pressroom.reach.report import AGES, ReachReport, ReleaseReach
from pressroom.settings import Settings

__all__ = ["as_csv", "as_html", "as_json", "as_markdown", "metric_rows", "when", "write_html"]

def when(moment: datetime) -> str:
    """An instant as the reports show it: UTC, to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def metric_rows(report: ReachReport) -> list[dict[str, str | int]]:
    """The report as long rows (release, language, channel, metric, link, value): the CSV, and what the totals are summed from."""
    rows: list[dict[str, str | int]] = []

    def add(release: ReleaseReach, metric: str, value: int, *, language: str = "", channel: str = "", link: str = "") -> None:
        rows.append({"release": release.slug, "date": release.date.date().isoformat(), "language": language,
                     "channel": channel, "metric": metric, "link": link, "value": value})

    for release in report.releases:
        for email in release.emails:
            for state, count in email.counts.items():
                add(release, f"emails {state}", count, language=email.language, channel=email.channel)
        add(release, "unsubscribes within 7 days", release.unsubscribes)
        add(release, "journalists emailed", release.journalists_emailed, channel="embargo")
        add(release, "journalists who opened the preview", release.journalists_opened, channel="embargo")
        add(release, "preview opens", release.preview_opens, channel="embargo")
        for link in release.links:
            add(release, "clicks by people", link.people, language=link.language, channel=link.channel, link=link.link)
            add(release, "clicks by machines", link.machines, language=link.language, channel=link.channel, link=link.link)
        for post in release.posts:
            for age, (likes, reposts, replies) in post.counts.items():
                for name, value in (("likes", likes), ("reposts", reposts), ("replies", replies)):
                    add(release, f"{name} at {age}", value, channel=post.channel, link=post.url)
    return rows


def as_csv(report: ReachReport) -> str:
    """One row per number (release, date, language, channel, metric, link, value)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["release", "date", "language", "channel", "metric", "link", "value"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(metric_rows(report))
    return out.getvalue()


def as_json(report: ReachReport) -> str:
    """The report as JSON (instants in ISO 8601, UTC)."""
    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        raise TypeError(type(value).__name__)

    data = dataclasses.asdict(report)
    for release, reach in zip(data["releases"], report.releases, strict=True):
        release.update(delivered=reach.delivered, people=reach.people, machines=reach.machines)
    return json.dumps(data, default=plain, ensure_ascii=False, indent=2) + "\n"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def as_markdown(report: ReachReport) -> str:
    """The report for people: one section per release, tables a Prefect artifact shows as they are."""
    lines = [f"# Reach, {report.period}", "",
             f"Counted {when(report.made_at)}. Link counts are aggregate: no reader is tracked, no email is opened by a pixel.", ""]
    if not report.releases:
        lines.append("No public release in this period.")
    for release in report.releases:
        lines += [f"## {_cell(release.title)}", "",
                  f"{when(release.date)} · {', '.join(release.languages)} · [{release.slug}]({release.url})", ""]
        if release.emails:
            lines += ["| email | language | delivered | deferred | ambiguous | failed |", "|---|---|---:|---:|---:|---:|"]
            lines += [f"| {email.channel} | {email.language or '-'} | {email.counts['sent']} | {email.counts['deferred']} | "
                      f"{email.counts['ambiguous']} | {email.counts['failed']} |" for email in release.emails]
            lines.append("")
        lines.append(f"- Unsubscribes within 7 days: {release.unsubscribes}")
        lines.append(f"- Journalists emailed: {release.journalists_emailed}; opened the preview: "
                     f"{release.journalists_opened} ({release.preview_opens} opens)")
        lines.append(f"- Link clicks: {release.people} by people, {release.machines} by machines (scanners, previews)")
        for language, (people, machines) in release.clicks_by_language().items():
            lines.append(f"  - {language}: {people} by people, {machines} by machines")
        lines.append("")
        if release.links:
            lines += ["| link | channel | language | people | machines |", "|---|---|---|---:|---:|"]
            lines += [f"| {_cell(link.link)} | {link.channel} | {link.language} | {link.people} | {link.machines} |"
                      for link in release.links]
            lines.append("")
        if release.posts:
            lines += ["| post | " + " | ".join(f"{age}: likes/reposts/replies" for age, _ in AGES) + " |",
                      "|---|" + "---:|" * len(AGES)]
            for post in release.posts:
                cells = ["/".join(map(str, post.counts[age])) if age in post.counts else "–" for age, _ in AGES]
                lines.append(f"| [{post.channel.removeprefix('social:')}]({post.url}) | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- the picture

_W, _H, _PAD = 560, 160, 36  # the chart's size and margins, in px
_LATE = timedelta(days=7)


def _chart(release: ReleaseReach, until: datetime) -> str:
    """An inline SVG: clicks by people and by machines, added up over time from the release's date (from
    the first click when that came more than a week later, so an old release's clicks are not one line at the edge)."""
    start = release.date.astimezone(UTC)
    if release.timeline and release.timeline[0][0] - start > _LATE:
        start = release.timeline[0][0]
    end = max([until.astimezone(UTC), *(hour + timedelta(hours=1) for hour, _, _ in release.timeline)])
    span = max((end - start).total_seconds(), 3600.0)
    top = max(1, release.people, release.machines)

    def x(moment: datetime) -> float:
        return _PAD + (_W - 2 * _PAD) * max(0.0, (moment - start).total_seconds()) / span

    def y(value: int) -> float:
        return _H - _PAD + (2 * _PAD - _H) * value / top

    def line(index: int) -> str:
        points, total = [f"{x(start):.1f},{y(0):.1f}"], 0
        for hour, *values in release.timeline:
            points.append(f"{x(hour):.1f},{y(total):.1f}")
            total += values[index]
            points.append(f"{x(hour):.1f},{y(total):.1f}")
        points.append(f"{x(end):.1f},{y(total):.1f}")
        return " ".join(points)

    title = f"Clicks on the links of {release.title} since {when(start)}"
    return (
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" aria-label="{html.escape(title)}">'
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#888"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#888"/>'
        f'<text x="{_PAD - 6}" y="{_PAD + 4}" text-anchor="end" font-size="11">{top}</text>'
        f'<text x="{_PAD - 6}" y="{_H - _PAD + 4}" text-anchor="end" font-size="11">0</text>'
        f'<text x="{_PAD}" y="{_H - _PAD + 16}" font-size="11">{html.escape(when(start))}</text>'
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 16}" text-anchor="end" font-size="11">{html.escape(when(end))}</text>'
        f'<polyline fill="none" stroke="#0b5d7a" stroke-width="2.5" points="{line(0)}"/>'
        f'<polyline fill="none" stroke="#b35900" stroke-width="1.5" stroke-dasharray="5 4" points="{line(1)}"/>'
        f'<text x="{_W - _PAD}" y="{_PAD - 18}" text-anchor="end" font-size="12" fill="#0b5d7a">'
        f'people {release.people}</text>'
        f'<text x="{_W - _PAD}" y="{_PAD - 4}" text-anchor="end" font-size="12" fill="#b35900">machines {release.machines}</text>'
        "</svg>"
    )


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;color:#1a1a1a;max-width:1100px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin:0 0 .2em}.meta{color:#555;margin:0 0 .8em}
section{border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;margin:1.2em 0;display:grid;
grid-template-columns:minmax(240px,1fr) auto;gap:1em;align-items:start}
dl{display:grid;grid-template-columns:auto auto;gap:.15em 1em;margin:0}dt{color:#555}dd{margin:0;font-weight:600;text-align:right}
table{border-collapse:collapse;font-size:.9em;grid-column:1/-1}td,th{border-bottom:1px solid #eee;padding:.2em .6em;text-align:left}
td.n{text-align:right}.note{color:#555;font-size:.9em}
"""


def as_html(report: ReachReport) -> str:
    """The report as one self-contained page: numbers and a chart per release, readable at a glance and printable."""
    e = html.escape
    parts = ["<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>Reach, {e(report.period)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Reach, {e(report.period)}</h1>",
             (f"<p class=\"note\">Counted {e(when(report.made_at))}. Clicks are aggregate counts per link: no reader is "
              "tracked and no email carries an open pixel. Machines are scanners and link previews, counted apart.</p>")]
    if not report.releases:
        parts.append("<p>No public release in this period.</p>")
    for release in report.releases:
        numbers = [("Emails delivered", release.delivered),
                   ("Deferred / ambiguous / failed", " / ".join(str(sum(email.counts[state] for email in release.emails))
                                                               for state in ("deferred", "ambiguous", "failed"))),
                   ("Unsubscribes within 7 days", release.unsubscribes),
                   ("Journalists emailed", release.journalists_emailed),
                   ("Opened the preview", f"{release.journalists_opened} ({release.preview_opens} opens)"),
                   ("Clicks by people", release.people), ("Clicks by machines", release.machines),
                   ("Social posts", len(release.posts))]
        parts += [f"<section><div><h2>{e(release.title)}</h2>",
                  (f"<p class=\"meta\">{e(when(release.date))} · {e(', '.join(release.languages))} · "
                   f"<a href=\"{e(release.url)}\">{e(release.slug)}</a></p><dl>"),
                  *(f"<dt>{e(label)}</dt><dd>{e(str(value))}</dd>" for label, value in numbers),
                  "</dl></div>", _chart(release, report.made_at)]
        if release.links:
            parts.append("<table><tr><th>Link</th><th>Channel</th><th>Language</th><th>People</th><th>Machines</th></tr>")
            parts += [f"<tr><td>{e(link.link)}</td><td>{e(link.channel)}</td><td>{e(link.language)}</td>"
                      f"<td class=\"n\">{link.people}</td><td class=\"n\">{link.machines}</td></tr>" for link in release.links]
            parts.append("</table>")
        if release.posts:
            parts.append("<table><tr><th>Post</th>" + "".join(f"<th>{age}: likes / reposts / replies</th>" for age, _ in AGES) + "</tr>")
            for post in release.posts:
                cells = "".join(f"<td class=\"n\">{' / '.join(map(str, post.counts[age])) if age in post.counts else '–'}</td>"
                                for age, _ in AGES)
                parts.append(f"<tr><td><a href=\"{e(post.url)}\">{e(post.channel.removeprefix('social:'))}</a></td>{cells}</tr>")
            parts.append("</table>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(report: ReachReport, *, settings: Settings) -> Path:
    """Write the HTML report to ``var/reports/reach-<period>.html``; its path."""
    folder = settings.path("var") / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"reach-{report.period}.html"
    path.write_text(as_html(report), encoding="utf-8")
    return path
