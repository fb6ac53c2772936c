"""After publication: correction notes and withdrawal notices to the readers who received a release.

Each follow-up (:func:`~pressroom.dispatch.decide.email_follow_ups`) is its own ledger channel
(``email:correction:<n>``, ``email:withdrawal``), planned once from the ``sent`` rows of the
release's email and sent by the one dispatch loop: a rerun, or a run after a crash, sends only
what the ledger does not have as sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pressroom.dispatch.decide import FollowUp, email_follow_ups, silent_edits, vanished_releases
from pressroom.dispatch.deliver import Send, deliver
from pressroom.dispatch.email import EmailChannel, per_language
from pressroom.dispatch.engine import Channel
from pressroom.ledger import DeliveryReport, Ledger
from pressroom.mail.transports import Transport
from pressroom.releases import LoadResult, Release, file_slug, public_releases
from pressroom.settings import Settings

if TYPE_CHECKING:
    from pressroom.dispatch.social import SocialReport

__all__ = ["AfterPublication", "FollowUpEmail", "after_publication", "follow_up_email", "reminders", "send_follow_ups"]

#: The channel whose ``sent`` rows are the readers a follow-up goes to.
ORIGINAL = "email"


def follow_up_email(*, release: Release, follow_up: FollowUp, settings: Settings,
                    transport: Transport | None = None) -> EmailChannel:
    """The short email of one follow-up, composed once per language; each reader gets their own unsubscribe link."""
    from pressroom.mail import compose_follow_up

    def compose(language: str) -> Any:
        return compose_follow_up(release=release, settings=settings, kind=follow_up.kind, note=follow_up.note,
                                 date=follow_up.date, number=follow_up.number, language=language)

    # In each reader's language, as they had the release.
    render = per_language(release=release, settings=settings, compose=compose)
    return EmailChannel(name=follow_up.channel, settings=settings, render=render,
                        key=lambda d: f"{d.release}/{follow_up.channel}/{d.recipient}", transport=transport)


@dataclass(frozen=True)
class FollowUpEmail(Send):
    """A correction note or a withdrawal notice to every reader the release's email reached."""

    release: Release
    follow_up: FollowUp
    transport: Transport | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return self.release.slug

    @property
    def channel(self) -> str:  # type: ignore[override]
        return self.follow_up.channel

    def plan(self, ledger: Ledger, now: datetime) -> int | None:
        return ledger.plan_received(release=self.release.slug, source=ORIGINAL, channel=self.follow_up.channel, now=now)

    def open(self, settings: Settings, ledger: Ledger) -> Channel:
        return follow_up_email(release=self.release, follow_up=self.follow_up, settings=settings, transport=self.transport)


def send_follow_ups(*, release: Release, settings: Settings, ledger: Ledger | None = None, now: datetime,
                    first_seen: datetime, run_id: str | None = None,
                    transport: Transport | None = None) -> list[DeliveryReport]:
    """Plan and send each follow-up ``release`` calls for; one report per follow-up channel. A server
    away stops one follow-up (its rows stay due for the next run), never the others."""
    return [
        deliver(FollowUpEmail(release=release, follow_up=follow_up, transport=transport), settings=settings, now=now,
                run_id=run_id, ledger=ledger).report
        for follow_up in email_follow_ups(release=release, settings=settings, first_seen=first_seen)
    ]


@dataclass
class AfterPublication:
    """What a run told the readers and followers of releases already out, and what it reminds of."""

    emails: list[DeliveryReport]
    social: SocialReport
    reminders: list[str]


def after_publication(*, loaded: LoadResult, settings: Settings, now: datetime,
                      run_id: str | None = None) -> AfterPublication:
    """Corrections and withdrawals to those who received a release (emails, replies, deleted posts);
    reminders of silent edits and deleted files; then what each public release says now, for the next run."""
    from pressroom.dispatch.social import follow_up_releases  # the social room loads only where posts are made

    ledger = Ledger.from_settings(settings)
    notes = reminders(loaded=loaded, ledger=ledger, now=now, root=settings.root)
    first_seen = ledger.first_published()
    published = [r for r in loaded.releases if r.slug in first_seen and (r.is_public(now) or r.shows_notice(now))]
    social = follow_up_releases(releases=published, settings=settings, ledger=ledger, now=now, first_seen=first_seen,
                                run_id=run_id)
    emails = [
        report
        for release in published
        for report in send_follow_ups(release=release, settings=settings, ledger=ledger, now=now,
                                      first_seen=first_seen[release.slug], run_id=run_id)
    ]
    ledger.remember_texts(releases=public_releases(loaded.releases, now))
    return AfterPublication(emails=emails, social=social, reminders=notes)


def reminders(*, loaded: LoadResult, ledger: Ledger, now: datetime, root: Path) -> list[str]:
    """What ``check`` and ``publish`` remind about published releases: a silent edit, a deleted file.
    Files are named relative to ``root`` where they are below it."""
    published = ledger.published_texts()
    by_slug = {release.slug: release for release in loaded.releases}
    lines = [
        f"{_shown(by_slug[slug].source, root)}: reminder: the text changed since it was published, with no new correction note "
        "(hint: add corrections: [{date: ..., note: ...}] saying what changed, so readers of the page and feeds see it)"
        for slug in silent_edits(releases=loaded.releases, published=published, now=now)
    ]
    # A file that does not load still holds its release: only a slug with no file at all has vanished.
    present = [*by_slug, *(file_slug(problem.path) for problem in loaded.problems)]
    lines += [
        f"releases/{slug}/: was published, but its file is gone: its URL is now a 404 and its posts stay up "
        "(hint: restore the file with 'status: withdrawn' and withdrawn: {date: ..., reason: ...}; the URL then keeps "
        "a notice and its posts are deleted)"
        for slug in vanished_releases(published=published, present=present)
    ]
    return lines


def _shown(path: Path, root: Path) -> str:
    absolute = path.resolve()
    return str(absolute.relative_to(root.resolve())) if absolute.is_relative_to(root.resolve()) else str(path)
