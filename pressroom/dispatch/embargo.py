"""The media list's channel: embargoed emails to journalists, "embargo moved" and "withdrawn".

Three ledger channels, so the ledger's uniqueness of (release, channel, recipient) is what
makes each email go once, across any number of runs and after a crash:

- ``embargo``: release = the slug; one row per matching journalist, enqueued from the notify
  instant until ``date`` (a journalist added meanwhile gets it too). The payload keeps the date
  it announced, the title and the source file, for the two emails below.
- ``embargo-moved``: release = ``<slug>@<new date, epoch seconds>``: once per journalist and new
  date, to those who had an embargoed email for another date.
- ``embargo-withdrawn``: release = the slug; once per journalist who had one, when the release
  went back to draft or its file was deleted before its date.

Whether the embargoed email goes at all is :func:`pressroom.dispatch.decide.embargo_decision`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from pressroom.audience import Audience, Journalist, MediaList, journalist_unsubscribe_url, preview_url
from pressroom.dispatch.decide import NOT_APPROVED, SEND, embargo_decision, embargo_moved, embargo_withdrawn
from pressroom.dispatch.deliver import Ask, Due, Pacing, Send, drive
from pressroom.dispatch.email import EmailChannel
from pressroom.dispatch.engine import Channel
from pressroom.errors import PermanentError
from pressroom.ledger import Delivery, DeliveryReport, Ledger
from pressroom.mail.transports import Transport
from pressroom.releases import Release
from pressroom.settings import Settings

__all__ = ["CHANNEL", "MOVED", "WITHDRAWN", "MediaEmail", "embargo_audience", "journalist_email", "journalists_due",
           "run_embargo"]

CHANNEL = "embargo"
MOVED = "embargo-moved"
WITHDRAWN = "embargo-withdrawn"
_HAD_IT = ("sent", "ambiguous", "sending")  # rows whose email may have arrived


def embargo_audience(*, release: Release, journalists: Iterable[Journalist]) -> list[Journalist]:
    """The journalists of ``release``'s beats (``embargo.topics``, default its tags); one without beats gets every release."""
    assert release.embargo is not None
    topics = set(release.embargo.topics or release.topics)
    return [j for j in journalists if not j.beats or topics.intersection(j.beats)]


def journalist_email(*, compose: Callable[..., Any], settings: Settings, media: MediaList, slug: str) -> Callable[[Delivery], bytes]:
    """Personalise a media-list email: the journalist's name, preview link and one-click opt-out.

    ``compose(language=...)`` renders it in a journalist's language, once per language (their
    version of the release, else the site language's).
    """
    from pressroom.mail import Recipient

    compositions: dict[str, Any] = {}

    def render(delivery: Delivery) -> bytes:
        journalist = media.get(address=delivery.recipient)
        if journalist is None:
            raise PermanentError(f"{delivery.recipient} is no longer on the media list")
        language = journalist.language or settings.site.language
        if language not in compositions:
            compositions[language] = compose(language=language)
        return compositions[language].message(Recipient(
            address=journalist.address, name=journalist.name,
            unsubscribe_url=journalist_unsubscribe_url(settings=settings, journalist_id=journalist.id),
            action_url=preview_url(settings=settings, journalist_id=journalist.id, slug=slug),
        ))

    return render


@dataclass(frozen=True)
class _Had:
    """What the ledger says one journalist had of one release: the last date announced to them."""

    date: datetime
    title: str
    source: str


def _payload(release: Release) -> str:
    return json.dumps({"date": release.date.isoformat(), "title": release.title, "source": str(release.source)})


def _announced(ledger: Ledger) -> dict[str, dict[str, _Had]]:
    """slug -> journalist address -> the latest embargoed or moved email that may have reached them."""
    had: dict[str, dict[str, _Had]] = {}
    for _, release, _, recipient, state, payload in ledger.rows_of(channels=(CHANNEL, MOVED)):
        if state not in _HAD_IT or not payload:
            continue
        data = json.loads(payload)
        slug = release.partition("@")[0]
        had.setdefault(slug, {})[recipient] = _Had(datetime.fromisoformat(data["date"]), data["title"], data["source"])
    return had


@dataclass(frozen=True)
class MediaEmail(Send):
    """One of the media list's emails about one release (``channel``: embargoed, moved or withdrawn)
    to ``recipients``; planned row by row on every run of its window, so a journalist added meanwhile
    gets it too, and the ledger's uniqueness keeps it once each."""

    channel: str
    key: str
    slug: str
    recipients: tuple[str, ...]
    payload: str
    release: Release | None = None  # embargoed and moved: the release as it is now
    title: str = ""  # withdrawn: the title the journalists had
    transport: Transport | None = field(default=None, compare=False)
    problems = 20

    def plan(self, ledger: Ledger, now: datetime) -> int:
        return sum(ledger.enqueue(release=self.key, channel=self.channel, recipient=address, subscriber_id=None,
                                  payload=self.payload, now=now)
                   for address in self.recipients)

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        from pressroom.mail import compose_embargo, compose_withdrawn

        if self.channel == WITHDRAWN:
            compose = partial(compose_withdrawn, slug=self.slug, title=self.title, settings=settings, release=self.release)
        else:
            compose = partial(compose_embargo, release=self.release, settings=settings, moved=self.channel == MOVED)
        media = MediaList(audience=Audience.from_settings(settings))
        name, slug = self.channel, self.slug
        return EmailChannel(name=name, settings=settings, transport=self.transport,
                            render=journalist_email(compose=compose, settings=settings, media=media, slug=slug),
                            key=lambda d: f"{name}-{slug}/{d.recipient}")  # apart from subscribers' emails in the outbox

    def pacing(self, settings: Settings) -> Pacing:
        return Pacing.email(settings, wait=False)


def _embargoed(*, releases: Iterable[Release], settings: Settings, ledger: Ledger, now: datetime,
               transport: Transport | None) -> list[Due]:
    due: list[Due] = []
    journalists: list[Journalist] | None = None
    for release in releases:
        if release.embargo is None:
            continue
        planned = bool(ledger.states(release=release.slug, channel=CHANNEL))
        decision = embargo_decision(release=release, settings=settings, now=now, planned=planned)
        if decision.skipped and now >= release.date:
            continue  # a release public already has nothing to say here, run after run
        if journalists is None and not decision.skipped:
            journalists = MediaList(audience=Audience.from_settings(settings)).reachable()
        matching = [j.address for j in embargo_audience(release=release, journalists=journalists or [])]
        if decision.action == "approve" and not matching:
            decision = NOT_APPROVED  # no editor is asked (nor a run paused) for an email that would reach nobody
        send = MediaEmail(channel=CHANNEL, key=release.slug, slug=release.slug, recipients=tuple(matching),
                          payload=_payload(release), release=release, transport=transport)
        due.append(Due(send=send, decision=decision, release=release, audience=len(matching)))
    return due


def _told_again(*, releases: Iterable[Release], had: dict[str, dict[str, _Had]], now: datetime,
                transport: Transport | None) -> list[Due]:
    by_slug = {release.slug: release for release in releases}
    due: list[Due] = []
    for slug, recipients in had.items():
        release = by_slug.get(slug)
        announced = {address: last.date for address, last in recipients.items()}
        moved = embargo_moved(release=release, announced=announced, now=now)
        if release is not None and moved:
            send = MediaEmail(channel=MOVED, key=f"{slug}@{int(release.date.timestamp())}", slug=slug,
                              recipients=tuple(moved), payload=_payload(release), release=release, transport=transport)
            due.append(Due(send=send, decision=SEND))
            continue
        exists = any(Path(last.source).exists() for last in recipients.values())
        if embargo_withdrawn(release=release, announced=announced, file_exists=exists, now=now):
            latest = max(recipients.values(), key=lambda last: last.date)
            send = MediaEmail(channel=WITHDRAWN, key=slug, slug=slug, recipients=tuple(recipients),
                              payload=json.dumps({"title": latest.title}), title=latest.title, release=release,
                              transport=transport)
            due.append(Due(send=send, decision=SEND))
    return due


def journalists_due(*, releases: Sequence[Release], settings: Settings, now: datetime, ledger: Ledger | None = None,
                    transport: Transport | None = None) -> list[Due]:
    """Every media-list email at ``now`` with its decision: embargoed (between ``embargo.notify`` and
    ``date``), moved, withdrawn. ``releases`` are every valid release read (drafts too)."""
    ledger = ledger or Ledger.from_settings(settings)
    had = _announced(ledger)
    return [*_embargoed(releases=releases, settings=settings, ledger=ledger, now=now, transport=transport),
            *_told_again(releases=releases, had=had, now=now, transport=transport)]


def run_embargo(
    *, releases: Sequence[Release], settings: Settings, now: datetime, ledger: Ledger | None = None,
    ask: Ask | None = None, run_id: str | None = None, transport: Transport | None = None,
) -> list[DeliveryReport]:
    """Every media-list email due at ``now``: embargoed, moved, withdrawn. Safe to run as often as wanted.

    ``ask`` is the editor's gate for a release that needs approval (one proof covers the journalists'
    email and the subscribers'); without it such a release waits.
    """
    return drive(journalists_due(releases=releases, settings=settings, now=now, ledger=ledger, transport=transport),
                 settings=settings, now=now, run_id=run_id, ask=ask, ledger=ledger)
