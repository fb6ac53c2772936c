"""Reach without tracking people: aggregate link counts, and the reports built on them and the ledger.

**Counting a click** (:class:`ClickCounter`). A counted link (``/r/<token>``) names a release, a
link, a channel and a language, never a reader. When it is followed, the client (address and
user agent) is turned into a keyed hash whose key lives in memory for one UTC day and is then
thrown away; the hash only folds repeated clicks (one person, one link, one day: one click) and
spots bursts. Neither the hash nor the address nor the user agent is ever written anywhere:
what reaches the database is "+1 person" or "+1 machine" for a link in an hour.

A click is a machine's when it is a HEAD request, when its user agent is a known scanner,
preview fetcher or script (or missing), or when one client follows several links of the same
message within ``[analytics] burst_seconds`` (security gateways open every link of an email
within seconds of its arrival); the clicks of a burst counted as people before it showed are
moved to the machines. A restart of the server forgets the day's key: a click repeated after
it counts again.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import html
import io
import json
import logging
import re
import secrets
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pressroom.ledger.counts import Counts, PostCount
from pressroom.settings import Settings
from pressroom.tokens import LinkCount

if TYPE_CHECKING:
    import httpx

    from pressroom.releases import Release

log = logging.getLogger("pressroom.reach")

__all__ = [
    "Click", "ClickCounter", "Period", "ReachReport", "ReleaseReach", "as_csv", "as_html", "as_json", "as_markdown",
    "build_report", "eu_csv", "eu_rows", "eu_summary", "is_scanner", "read_back", "write_html",
]

# Known scanners, link-preview fetchers and scripts: security gateways (Safe Links, Proofpoint,
# Mimecast, Barracuda...), chat and social previews (a Mastodon server fetching the card of a
# post: http.rb; Bluesky's cardyb), HTTP libraries, headless browsers.
_SCANNERS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scan|preview|proofpoint|mimecast|barracuda|safelinks|urldefense|fireeye|"
    r"ironport|symantec|trendmicro|sophos|forcepoint|zscaler|cisco|http\.rb|mastodon|pleroma|akkoma|misskey|"
    r"cardyb|facebookexternalhit|whatsapp|telegram|slack|discord|skype|linkedin|google-safety|"
    r"python|curl/|wget/|go-http-client|httpx|aiohttp|okhttp|java/|libwww|node-fetch|axios|headless",
    re.IGNORECASE,
)
# Distinct links of one message followed within the burst window that make a client a machine.
_BURST_LINKS = 3
# The day's folded clicks kept in memory at most; past it the day starts over (a click may count twice).
_MAX_FOLDS = 500_000


def is_scanner(user_agent: str) -> bool:
    """Whether ``user_agent`` is a machine's: a known scanner, preview fetcher or script, or none at all."""
    return not user_agent.strip() or _SCANNERS.search(user_agent) is not None


@dataclass(frozen=True)
class Click:
    """What to add to the counts: a link's people or machines in an hour (negative: moved away)."""

    link: LinkCount
    hour: datetime
    people: int = 0
    machines: int = 0


@dataclass
class _Recent:
    at: datetime
    link: LinkCount
    hour: datetime
    person: bool


class ClickCounter:
    """Decides what one followed link adds to the counts; remembers, for one day, only keyed hashes."""

    def __init__(self, *, burst: timedelta) -> None:
        self.burst = burst
        self._lock = threading.Lock()
        self._day: date | None = None
        self._key = b""
        self._folds: set[bytes] = set()
        self._recent: dict[bytes, deque[_Recent]] = {}

    def _today(self, now: datetime) -> None:
        if now.date() != self._day:  # a new day: a new key, and yesterday's hashes are gone with the old one
            self._day, self._key = now.date(), secrets.token_bytes(32)
            self._folds.clear()
            self._recent.clear()

    def _hash(self, *parts: str) -> bytes:
        return hmac.new(self._key, "\x00".join(parts).encode("utf-8", "replace"), hashlib.sha256).digest()[:16]

    def click(self, *, link: LinkCount, client: str, user_agent: str, head: bool, now: datetime) -> list[Click]:
        """What following ``link`` at ``now`` adds; ``client`` and ``user_agent`` are only hashed, in memory."""
        hour = now.replace(minute=0, second=0, microsecond=0)
        with self._lock:
            self._today(now)
            if head or is_scanner(user_agent):
                return [Click(link=link, hour=hour, machines=1)]
            visitor = self._hash(client, user_agent)
            moved = self._burst(visitor, link, hour, now)
            if moved is not None:
                return [*moved, Click(link=link, hour=hour, machines=1)]
            fold = self._hash(visitor.hex(), link.release, link.link, link.channel, link.language)
            if fold in self._folds:
                return []
            if len(self._folds) >= _MAX_FOLDS:
                self._folds.clear()
            self._folds.add(fold)
            self._recent[visitor][-1].person = True
            return [Click(link=link, hour=hour, people=1)]

    def _burst(self, visitor: bytes, link: LinkCount, hour: datetime, now: datetime) -> list[Click] | None:
        """The clicks to move to the machines when this one completes a burst; None when it does not."""
        if visitor not in self._recent and len(self._recent) >= _MAX_FOLDS:
            self._recent.clear()
        recent = self._recent.setdefault(visitor, deque())
        while recent and now - recent[0].at > self.burst:
            recent.popleft()
        recent.append(_Recent(at=now, link=link, hour=hour, person=False))
        message = (link.release, link.channel, link.language)
        same = [r for r in recent if (r.link.release, r.link.channel, r.link.language) == message]
        if len({r.link.link for r in same}) < _BURST_LINKS:
            return None
        moved = [Click(link=r.link, hour=r.hour, people=-1, machines=1) for r in same if r.person]
        for r in same:
            r.person = False
        return moved


# --------------------------------------------------------------------------- the reach report

EMAIL_STATES = ("sent", "deferred", "ambiguous", "failed")
AGES = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)))
UNSUBSCRIBE_WINDOW = timedelta(days=7)
_PERIOD = re.compile(r"(?P<year>\d{4})(?:-(?:Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?")


@dataclass(frozen=True)
class Period:
    """A reporting period: ``2026``, ``2026-Q4`` or ``2026-11`` (start included, end excluded, in the site's time zone)."""

    label: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str, *, tz: tzinfo = UTC) -> Period:
        """The period ``text`` names; ``ValueError`` saying how to write one otherwise."""
        found = _PERIOD.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"period {text!r}: write a year (2026), a quarter (2026-Q4) or a month (2026-11)")
        year = int(found["year"])
        if found["quarter"]:
            first, months = (int(found["quarter"]) - 1) * 3 + 1, 3
        elif found["month"]:
            first, months = int(found["month"]), 1
        else:
            first, months = 1, 12
        start = datetime(year, first, 1, tzinfo=tz)
        after = first + months
        end = datetime(year + (after - 1) // 12, (after - 1) % 12 + 1, 1, tzinfo=tz)
        return cls(label=text.strip(), start=start, end=end)

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class LinkReach:
    """Clicks on one link of a release in one channel and language."""

    channel: str
    language: str
    link: str
    people: int
    machines: int


@dataclass(frozen=True)
class PostReach:
    """A social post of a release and its counts read back at each age (likes, reposts, replies)."""

    channel: str
    url: str
    counts: dict[str, tuple[int, int, int]]


@dataclass(frozen=True)
class ReleaseReach:
    """What one release achieved: the ledger's sends, the aggregate counts, the network's counts."""

    slug: str
    title: str
    date: datetime
    url: str
    languages: tuple[str, ...]
    status: str
    projects: tuple[tuple[str, str, str, str], ...]  # (id, name, programme, grant) of each EU-funded co-issuer
    emails: dict[str, dict[str, int]]  # ledger channel -> state -> count
    unsubscribes: int
    journalists_emailed: int
    preview_opens: int
    journalists_opened: int
    links: tuple[LinkReach, ...]
    posts: tuple[PostReach, ...]
    timeline: tuple[tuple[datetime, int, int], ...]  # (hour, people, machines) in that hour

    @property
    def delivered(self) -> int:
        return sum(states["sent"] for states in self.emails.values())

    @property
    def people(self) -> int:
        return sum(link.people for link in self.links)

    @property
    def machines(self) -> int:
        return sum(link.machines for link in self.links)

    def clicks_by_language(self) -> dict[str, tuple[int, int]]:
        """language -> (people, machines)."""
        totals: dict[str, tuple[int, int]] = {}
        for link in self.links:
            people, machines = totals.get(link.language, (0, 0))
            totals[link.language] = (people + link.people, machines + link.machines)
        return dict(sorted(totals.items()))


@dataclass(frozen=True)
class ReachReport:
    """The reach of every public release of a period."""

    period: str
    made_at: datetime
    releases: tuple[ReleaseReach, ...]


def _post_counts(rows: list[PostCount]) -> dict[tuple[str, str], dict[str, tuple[int, int, int]]]:
    found: dict[tuple[str, str], dict[str, tuple[int, int, int]]] = {}
    for row in rows:
        found.setdefault((row.release, row.channel), {})[row.age] = (row.likes, row.reposts, row.replies)
    return found


def build_report(*, settings: Settings, releases: Sequence[Release], period: Period | None, now: datetime) -> ReachReport:
    """The reach of each public release of ``releases`` dated in ``period`` (every one: None), as of ``now``."""
    from pressroom.audience import Audience
    from pressroom.audience.media import MediaList
    from pressroom.dispatch.embargo import CHANNEL as JOURNALISTS
    from pressroom.ledger import Ledger
    from pressroom.releases.blocks import eu_acknowledgement

    chosen = sorted((r for r in releases if (r.is_public(now) or r.shows_notice(now)) and (period is None or period.holds(r.date))),
                    key=lambda r: (r.date, r.slug))
    slugs = [r.slug for r in chosen]
    ledger, counts = Ledger.from_settings(settings), Counts(settings=settings)
    audience, media = Audience.from_settings(settings), MediaList.from_settings(settings)
    clicks, posts = counts.clicks(releases=slugs), _post_counts(counts.posts(releases=slugs))
    made: list[ReleaseReach] = []
    for release in chosen:
        mine = [row for row in clicks if row.release == release.slug]
        links: dict[tuple[str, str, str], list[int]] = {}
        hours: dict[datetime, list[int]] = {}
        for row in mine:
            links.setdefault((row.channel, row.language, row.link), [0, 0])
            links[(row.channel, row.language, row.link)][0] += row.people
            links[(row.channel, row.language, row.link)][1] += row.machines
            hours.setdefault(row.hour, [0, 0])
            hours[row.hour][0] += row.people
            hours[row.hour][1] += row.machines
        channels = ledger.channels(release=release.slug)
        emails = {}
        for channel in channels:
            if channel.startswith("social:") or channel.startswith("embargo"):
                continue
            states = ledger.report(release=release.slug, channel=channel, problems=0)
            emails[channel] = {state: states.counts.get(state, 0) for state in EMAIL_STATES}
        journalists = ledger.report(release=release.slug, channel=JOURNALISTS, problems=0).sent if JOURNALISTS in channels else 0
        opens = media.opens(release=release.slug)
        made.append(ReleaseReach(
            slug=release.slug, title=release.title, date=release.date, url=release.url,
            languages=tuple(version.language for version in release.versions),
            status="withdrawn" if release.withdrawn is not None else "published",
            projects=tuple((issuer.id, issuer.name, funding.programme, funding.grant)
                           for _, grants in eu_acknowledgement(release=release) for issuer, funding in grants),
            emails=emails,
            unsubscribes=audience.unsubscribes(since=release.date, until=min(now, release.date + UNSUBSCRIBE_WINDOW)),
            journalists_emailed=journalists,
            preview_opens=sum(count for _, count, _, _ in opens), journalists_opened=len(opens),
            links=tuple(LinkReach(channel=c, language=lang, link=link, people=p, machines=m)
                        for (c, lang, link), (p, m) in sorted(links.items())),
            posts=tuple(PostReach(channel=channel, url=answer.split()[0], counts=posts.get((release.slug, channel), {}))
                        for channel in channels if channel.startswith("social:")
                        for answer in ledger.responses(release=release.slug, channel=channel).values()
                        if answer.startswith("https://")),  # a thread's answer is its posts' URLs: the first is the post
            timeline=tuple((hour, p, m) for hour, (p, m) in sorted(hours.items())),
        ))
    return ReachReport(period=period.label if period else "all", made_at=now, releases=tuple(made))


# --------------------------------------------------------------------------- social posts' counts read back


@runtime_checkable
class ReadsBack(Protocol):
    """A network client that can say how a post of ours fared: (likes, reposts, replies) now."""

    def engagement(self, url: str) -> tuple[int, int, int]: ...


def _due_age(published: datetime, now: datetime) -> str | None:
    """The age whose reading is due at ``now`` (the latest passed; 7d stays due once passed)."""
    due = [age for age, after in AGES if published + after <= now]
    return due[-1] if due else None


def read_back(*, settings: Settings, releases: Sequence[Release], now: datetime,
              transport: httpx.BaseTransport | None = None) -> list[PostCount]:
    """Read the counts of each social post of ``releases`` whose next age (1 h, 24 h, 7 days after the
    release went public) has come, once per age; what was read. A network that cannot answer now is
    asked again by the next run; one that gives no counts (LinkedIn, the outbox) is not asked."""
    from pressroom.errors import PressroomError
    from pressroom.ledger import Ledger
    from pressroom.social.network import channel_name, open_networks

    ledger, counts = Ledger.from_settings(settings), Counts(settings=settings)
    public = ledger.first_published()
    read = {(row.release, row.channel, row.age) for row in counts.posts(releases=[r.slug for r in releases])}
    made: list[PostCount] = []
    for network in open_networks(settings=settings, transport=transport):
        try:
            if not isinstance(network, ReadsBack):
                continue
            channel = channel_name(network.account)
            for release in releases:
                age = _due_age(public[release.slug], now) if release.slug in public else None
                if age is None or (release.slug, channel, age) in read:
                    continue
                answers = [a for a in ledger.responses(release=release.slug, channel=channel).values() if a.startswith("https://")]
                if not answers:
                    continue
                url = answers[0].split()[0]
                try:
                    likes, reposts, replies = network.engagement(url)
                except PressroomError as exc:
                    log.warning("could not read back %s: %s", url, exc)
                    continue
                count = PostCount(release=release.slug, channel=channel, url=url, age=age, likes=likes,
                                  reposts=reposts, replies=replies, read_at=now)
                if counts.record_post(count):
                    made.append(count)
        finally:
            network.close()
    return made


# --------------------------------------------------------------------------- its forms


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def metric_rows(report: ReachReport) -> list[dict[str, str | int]]:
    """The report as long rows (release, language, channel, metric, link, value): the CSV, and what the totals are summed from."""
    rows: list[dict[str, str | int]] = []

    def add(release: ReleaseReach, metric: str, value: int, *, language: str = "", channel: str = "", link: str = "") -> None:
        rows.append({"release": release.slug, "date": release.date.date().isoformat(), "language": language,
                     "channel": channel, "metric": metric, "link": link, "value": value})

    for release in report.releases:
        for channel, states in release.emails.items():
            for state, count in states.items():
                add(release, f"emails {state}", count, channel=channel)
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
             f"Counted {_when(report.made_at)}. Link counts are aggregate: no reader is tracked, no email is opened by a pixel.", ""]
    if not report.releases:
        lines.append("No public release in this period.")
    for release in report.releases:
        lines += [f"## {_cell(release.title)}", "",
                  f"{_when(release.date)} · {', '.join(release.languages)} · [{release.slug}]({release.url})", ""]
        if release.emails:
            lines += ["| email | delivered | deferred | ambiguous | failed |", "|---|---:|---:|---:|---:|"]
            lines += [f"| {channel} | {s['sent']} | {s['deferred']} | {s['ambiguous']} | {s['failed']} |"
                      for channel, s in release.emails.items()]
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


# --------------------------------------------------------------------------- the EU communication report

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
            emails = ", ".join(f"{channel}={states['sent']}" for channel, states in release.emails.items()) or "none"
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
                  f"{len(mine)} activities, audience reached {reached}.", ""]
        lines += [f"- {row['date']} · {row['activity_type']} · {row['title']} · {row['languages']} · "
                  f"{row['audience_reached']} reached ({row['audience_detail']}) · {row['url']} · {row['status']}" for row in mine]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- the picture

_W, _H, _PAD = 560, 160, 36


def _chart(release: ReleaseReach, until: datetime) -> str:
    """An inline SVG: clicks by people and by machines, added up over time from the release's date."""
    start = release.date.astimezone(UTC)
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

    title = f"Clicks on the links of {release.title} since {_when(release.date)}"
    return (
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" aria-label="{html.escape(title)}">'
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#888"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#888"/>'
        f'<text x="{_PAD - 6}" y="{_PAD + 4}" text-anchor="end" font-size="11">{top}</text>'
        f'<text x="{_PAD - 6}" y="{_H - _PAD + 4}" text-anchor="end" font-size="11">0</text>'
        f'<text x="{_PAD}" y="{_H - _PAD + 16}" font-size="11">{html.escape(_when(start))}</text>'
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 16}" text-anchor="end" font-size="11">{html.escape(_when(end))}</text>'
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
             f"<p class=\"note\">Counted {e(_when(report.made_at))}. Clicks are aggregate counts per link: no reader is "
             "tracked and no email carries an open pixel. Machines are scanners and link previews, counted apart.</p>"]
    if not report.releases:
        parts.append("<p>No public release in this period.</p>")
    for release in report.releases:
        numbers = [("Emails delivered", release.delivered),
                   ("Deferred / ambiguous / failed", " / ".join(str(sum(s[state] for s in release.emails.values()))
                                                               for state in ("deferred", "ambiguous", "failed"))),
                   ("Unsubscribes within 7 days", release.unsubscribes),
                   ("Journalists emailed", release.journalists_emailed),
                   ("Opened the preview", f"{release.journalists_opened} ({release.preview_opens} opens)"),
                   ("Clicks by people", release.people), ("Clicks by machines", release.machines),
                   ("Social posts", len(release.posts))]
        parts += [f"<section><div><h2>{e(release.title)}</h2>",
                  f"<p class=\"meta\">{e(_when(release.date))} · {e(', '.join(release.languages))} · "
                  f"<a href=\"{e(release.url)}\">{e(release.slug)}</a></p><dl>",
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
