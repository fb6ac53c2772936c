"""The EU communication report: each EU-funded co-issuer's activities, as the Funding & Tenders portal asks for them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from pressroom.reach.report import AGES, ReachReport

__all__ = ["EU_FIELDS", "eu_csv", "eu_rows", "eu_summary"]

EU_FIELDS = ["project", "grant", "programme", "activity_type", "date", "title", "languages", "audience_reached",
             "audience_detail", "url", "status", "source"]


def eu_rows(report: ReachReport, *, project: str | None = None) -> list[dict[str, str | int]]:
    """Each EU-funded co-issuer's communication activities, in the shape of the Funding & Tenders
    portal's continuous-reporting questionnaire: a press release per release, a social-media post per post.

    ``project`` (an organisation id or a grant number) keeps that project's rows only. The
    ``source`` column says where each number comes from, so it can be checked.
    """
    rows: list[dict[str, str | int]] = []
    for release in report.releases:
        for org_id, name, programme, grant in release.projects:
            if project is not None and project not in (org_id, grant):
                continue
            common = {"project": name, "grant": grant, "programme": programme, "date": release.date.date().isoformat(),
                      "title": release.title, "languages": " ".join(release.languages), "status": release.status}
            emails = ", ".join(f"{email.channel}/{email.language or '-'}={email.counts['sent']}" for email in release.emails) or "none"
            rows.append(common | {
                "activity_type": "Press release",
                "audience_reached": release.delivered + release.journalists_emailed,
                "audience_detail": f"{release.delivered} emails delivered to subscribers, {release.journalists_emailed} to "
                                   f"journalists ({release.journalists_opened} opened the preview); "
                                   f"{release.people} link clicks by people",
                "url": release.url,
                "source": f"ledger: release {release.slug}, sent per channel {emails}, embargo={release.journalists_emailed}; "
                          f"link counts: release {release.slug}, people={release.people}",
            })
            for post in release.posts:
                age = next((age for age, _ in reversed(AGES) if age in post.counts), None)
                likes, reposts, replies = post.counts[age] if age else (0, 0, 0)
                rows.append(common | {
                    "activity_type": "Social media",
                    "audience_reached": likes + reposts + replies,
                    "audience_detail": f"{likes} likes, {reposts} reposts, {replies} replies" + (f" after {age}" if age else " (not read back yet)"),
                    "url": post.url,
                    "source": f"ledger: release {release.slug}, channel {post.channel}; read back from the network at {age or '-'}",
                })
    return rows


def eu_csv(rows: Sequence[dict[str, str | int]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EU_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def eu_summary(rows: Sequence[dict[str, str | int]], *, period: str) -> str:
    """A readable summary per project: what to copy into the portal, and how many it reached."""
    lines = [f"# EU communication activities, {period}", ""]
    if not rows:
        lines.append("No communication activity of an EU-funded co-issuer in this period.")
    projects: dict[tuple[str, str], list[dict[str, str | int]]] = {}
    for row in rows:
        projects.setdefault((str(row["project"]), str(row["grant"])), []).append(row)
    for (name, grant), mine in projects.items():
        reached = sum(int(row["audience_reached"]) for row in mine)
        lines += [f"## {name} (grant {grant}, {mine[0]['programme']})", "",
                  f"{len(mine)} {'activity' if len(mine) == 1 else 'activities'}, audience reached {reached}.", ""]
        lines += [f"- {row['date']} · {row['activity_type']} · {row['title']} · {row['languages']} · "
                  f"{row['audience_reached']} reached ({row['audience_detail']}) · {row['url']} · {row['status']}" for row in mine]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
