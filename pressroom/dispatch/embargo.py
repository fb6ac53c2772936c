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
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from pressroom.audience import Audience, Journalist, MediaList, journalist_unsubscribe_url, preview_url
from pressroom.dispatch.decide import embargo_decision
from pressroom.dispatch.email import EmailChannel, send_email
from pressroom.errors import PermanentError
from pressroom.ledger import Delivery, DeliveryReport, Ledger
from pressroom.mail.transports import Transport
from pressroom.releases import Release
from pressroom.settings import Settings

__all__ = ["CHANNEL", "MOVED", "WITHDRAWN", "embargo_audience", "journalist_email", "run_embargo"]

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


def _send(*, name: str, key: str, compose: Callable[..., Any], settings: Settings, ledger: Ledger, media: MediaList,
          slug: str, now: datetime, run_id: str | None, transport: Transport | None) -> DeliveryReport:
    channel = EmailChannel(name=name, settings=settings, transport=transport,
                           render=journalist_email(compose=compose, settings=settings, media=media, slug=slug),
                           key=lambda d: f"{name}-{slug}/{d.recipient}")  # apart from subscribers' emails in the outbox
    send_email(channel=channel, ledger=ledger, release=key, run_id=run_id, wait=False, now=now)
    return ledger.report(release=key, channel=name, run_id=run_id, problems=20)


def run_embargo(
    *, releases: Sequence[Release], settings: Settings, ledger: Ledger, now: datetime,
    approved: Callable[[Release], bool] | None = None, run_id: str | None = None, transport: Transport | None = None,
) -> list[DeliveryReport]:
    """Every media-list email due at ``now``: embargoed, moved, withdrawn. Safe to run as often as wanted.

    ``approved`` asks an editor (the flows' approval gate) when a release needs approval;
    without it such a release waits. ``releases`` are every valid release read (drafts too).
    """
    from pressroom.mail import compose_embargo, compose_withdrawn

    media = MediaList(audience=Audience.from_settings(settings))
    reports: list[DeliveryReport] = []
    had = _announced(ledger)
    journalists: list[Journalist] | None = None
    for release in releases:
        if release.embargo is None:
            continue
        planned = bool(ledger.states(release=release.slug, channel=CHANNEL))
        decision = embargo_decision(release=release, settings=settings, now=now, planned=planned)
        if journalists is None and not decision.skipped:
            journalists = media.reachable()
        matching = embargo_audience(release=release, journalists=journalists or [])
        if decision.action == "approve":
            # No editor is asked (nor a run paused) for an email that would reach nobody.
            decision = embargo_decision(release=release, settings=settings, now=now, planned=planned,
                                        approved=bool(matching) and approved is not None and approved(release))
        if decision.skipped:
            if now < release.date:  # a release public already has nothing to say here, run after run
                reports.append(DeliveryReport(release=release.slug, channel=CHANNEL, skipped=decision.reason))
            continue
        for journalist in matching:
            ledger.enqueue(release=release.slug, channel=CHANNEL, recipient=journalist.address, subscriber_id=None,
                           payload=_payload(release), now=now)
        reports.append(_send(name=CHANNEL, key=release.slug, compose=partial(compose_embargo, release=release, settings=settings),
                             settings=settings, ledger=ledger, media=media, slug=release.slug, now=now, run_id=run_id,
                             transport=transport))
    by_slug = {release.slug: release for release in releases}
    for slug, recipients in had.items():
        release = by_slug.get(slug)
        if release is not None and release.status == "approved" and now < release.date:
            moved = [address for address, last in recipients.items() if last.date != release.date]
            if moved:
                key = f"{slug}@{int(release.date.timestamp())}"
                for address in moved:
                    ledger.enqueue(release=key, channel=MOVED, recipient=address, subscriber_id=None,
                                   payload=_payload(release), now=now)
                reports.append(_send(name=MOVED, key=key,
                                     compose=partial(compose_embargo, release=release, settings=settings, moved=True),
                                     settings=settings, ledger=ledger, media=media, slug=slug, now=now, run_id=run_id,
                                     transport=transport))
            continue
        # A file that does not parse is not a withdrawal: only a draft or a file that is gone.
        gone = release is None and not any(Path(last.source).exists() for last in recipients.values())
        if not (gone or (release is not None and release.status == "draft")):
            continue
        latest = max(recipients.values(), key=lambda last: last.date)
        if now >= latest.date:
            continue  # its time has passed: nothing left to hold back
        for address in recipients:
            ledger.enqueue(release=slug, channel=WITHDRAWN, recipient=address, subscriber_id=None,
                           payload=json.dumps({"title": latest.title}), now=now)
        reports.append(_send(name=WITHDRAWN, key=slug,
                             compose=partial(compose_withdrawn, slug=slug, title=latest.title, settings=settings),
                             settings=settings, ledger=ledger, media=media, slug=slug, now=now, run_id=run_id,
                             transport=transport))
    return reports
