"""The reach of each release: the ledger's sends, the aggregate link counts, the networks' counts read back."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pressroom.ledger.counts import ClickRow, Counts, PostCount
from pressroom.ledger.reports import Group
from pressroom.settings import Settings

if TYPE_CHECKING:
    import httpx

    from pressroom.ledger import Ledger
    from pressroom.releases import Release

__all__ = ["AGES", "LinkReach", "Period", "PostReach", "ReachReport", "ReleaseReach", "build_report", "read_back"]

log = logging.getLogger("pressroom.reach")

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
    emails: tuple[Group, ...]  # the email states (EMAIL_STATES) per channel and reader language
    unsubscribes: int
    journalists_emailed: int
    preview_opens: int
    journalists_opened: int
    links: tuple[LinkReach, ...]
    posts: tuple[PostReach, ...]
    timeline: tuple[tuple[datetime, int, int], ...]  # (hour, people, machines) in that hour

    @property
    def delivered(self) -> int:
        return sum(email.counts["sent"] for email in self.emails)

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


def _clicks_of(rows: Sequence[ClickRow]) -> tuple[tuple[LinkReach, ...], tuple[tuple[datetime, int, int], ...]]:
    """A release's counted hours summed per link, and per hour (its timeline)."""
    links: dict[tuple[str, str, str], list[int]] = {}
    hours: dict[datetime, list[int]] = {}
    for row in rows:
        for total in (links.setdefault((row.channel, row.language, row.link), [0, 0]), hours.setdefault(row.hour, [0, 0])):
            total[0] += row.people
            total[1] += row.machines
    return (tuple(LinkReach(channel=channel, language=language, link=link, people=people, machines=machines)
                  for (channel, language, link), (people, machines) in sorted(links.items())),
            tuple((hour, people, machines) for hour, (people, machines) in sorted(hours.items())))


def build_report(*, settings: Settings, releases: Sequence[Release], period: Period | None, now: datetime) -> ReachReport:
    """The reach of each public release of ``releases`` dated in ``period`` (every one: None), as of ``now``."""
    from pressroom.audience import Audience
    from pressroom.audience.media import MediaList
    from pressroom.ledger import Ledger

    chosen = sorted((r for r in releases if (r.is_public(now) or r.shows_notice(now)) and (period is None or period.holds(r.date))),
                    key=lambda r: (r.date, r.slug))
    slugs = [r.slug for r in chosen]
    ledger, counts = Ledger.from_settings(settings), Counts(settings=settings)
    audience, media = Audience.from_settings(settings), MediaList.from_settings(settings)
    clicks, posts = counts.clicks(releases=slugs), _post_counts(counts.posts(releases=slugs))
    made: list[ReleaseReach] = []
    for release in chosen:
        links, timeline = _clicks_of([row for row in clicks if row.release == release.slug])
        channels = ledger.channels(release=release.slug)
        emails, journalists = _sends(ledger, release.slug, channels)
        opens = media.opens(release=release.slug)
        made.append(ReleaseReach(
            slug=release.slug, title=release.title, date=release.date, url=release.url,
            languages=tuple(version.language for version in release.versions),
            status="withdrawn" if release.withdrawn is not None else "published",
            projects=_projects(release, settings),
            emails=emails,
            unsubscribes=audience.unsubscribes(since=release.date, until=min(now, release.date + UNSUBSCRIBE_WINDOW)),
            journalists_emailed=journalists,
            preview_opens=sum(count for _, count, _, _ in opens), journalists_opened=len(opens),
            links=links,
            posts=_posts(ledger, release.slug, channels, posts),
            timeline=timeline,
        ))
    return ReachReport(period=period.label if period else "all", made_at=now, releases=tuple(made))


def _sends(ledger: Ledger, slug: str, channels: Sequence[str]) -> tuple[tuple[Group, ...], int]:
    """The email states of each channel that reached readers, per reader language, and how many journalists were emailed."""
    from pressroom.dispatch.embargo import CHANNEL as JOURNALISTS

    emails = tuple(Group(release=slug, channel=group.channel, language=group.language,
                         counts={state: group.counts.get(state, 0) for state in EMAIL_STATES})
                   for group in ledger.overview(release=slug)
                   if not group.channel.startswith(("social:", "embargo")))
    journalists = ledger.report(release=slug, channel=JOURNALISTS, problems=0).sent if JOURNALISTS in channels else 0
    return emails, journalists


def _projects(release: Release, settings: Settings) -> tuple[tuple[str, str, str, str], ...]:
    """(id, name, programme, grant) of each EU-funded co-issuer, in the acknowledgement's order."""
    from pressroom.releases.blocks import eu_acknowledgement

    return tuple((issuer.id, issuer.name, funding.programme, funding.grant)
                 for _, grants in eu_acknowledgement(release=release, settings=settings) for issuer, funding in grants)


def _posts(ledger: Ledger, slug: str, channels: Sequence[str], counts: dict) -> tuple[PostReach, ...]:
    """Each post of the release with the counts read back; a thread's answer is its posts' URLs, the first the post."""
    return tuple(PostReach(channel=channel, url=answer.split()[0], counts=counts.get((slug, channel), {}))
                 for channel in channels if channel.startswith("social:")
                 for answer in ledger.responses(release=slug, channel=channel).values()
                 if answer.startswith(("https://", "file://")))  # file: a post the outbox wrote instead of a network


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
    from pressroom.social.accounts import open_networks
    from pressroom.social.network import channel_name

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
