"""Whether a release goes out on a channel: pure functions, asked before any gate, plan or send.

Each answers :class:`Decision`: ``send``; ``skip`` with the reason shown in the run report and
artifact; or ``approve``: an editor must say yes first. The editor's gate (in the flows) answers
``send``, ``skip`` (rejected, not answered in time) or ``wait`` (asked, no answer yet: a later run
sends it once approved). Nothing here reads the clock, the database or Prefect; the callers pass
what they know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pressroom.releases import Release, resolve_local_time
from pressroom.settings import Settings, SocialAccount

__all__ = [
    "Decision",
    "FollowUp",
    "NOT_APPROVED",
    "SEND",
    "WAIT",
    "digest_period",
    "digest_releases",
    "email_decision",
    "email_follow_ups",
    "embargo_decision",
    "embargo_moved",
    "embargo_withdrawn",
    "silent_edits",
    "social_decision",
    "social_follow_ups",
    "vanished_releases",
]


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "skip", "approve", "wait"]
    reason: str = ""

    @property
    def skipped(self) -> bool:
        return self.action == "skip"


SEND = Decision("send")
NOT_APPROVED = Decision("skip", "not approved by an editor")
WAIT = Decision("wait", "waiting for an editor: the email goes out when approved")


def _too_old(release: Release, first_seen: datetime, max_age_days: float | None) -> str:
    if max_age_days is None:
        return ""
    age = first_seen - release.date
    if age > timedelta(days=max_age_days):
        return f"it was already {age.days} days old when first seen public (max_age_days = {max_age_days:g})"
    return ""


def email_decision(*, release: Release, settings: Settings, first_seen: datetime, planned: bool) -> Decision:
    """The per-release email of ``release``, first seen public at ``first_seen``.

    A release planned before went through any gate then; it only finishes sending.
    """
    if not settings.email.enabled:
        return Decision("skip", "email is turned off in settings (email.enabled = false)")
    if not release.channel("email").enabled:
        return Decision("skip", "the release says email: {enabled: false}")
    if planned:
        return SEND
    too_old = _too_old(release, first_seen, settings.email.max_age_days)
    if too_old:
        return Decision("skip", too_old.replace("max_age_days", "email.max_age_days"))
    if release.needs_approval(settings):
        return Decision("approve", "an editor approves the email first")
    return SEND


def social_decision(*, release: Release, account: SocialAccount, forms: Iterable[str], planned: bool,
                    now: datetime) -> Decision:
    """The post of ``release`` on ``account``, whose posts take the ``forms`` of these networks."""
    if not any(release.channel(form).enabled for form in forms):
        return Decision("skip", "disabled in front matter")
    if planned:
        return SEND
    if account.max_age_days is not None and release.date < now - timedelta(days=account.max_age_days):
        # A new account does not post the whole archive.
        return Decision("skip", f"older than {account.max_age_days:g} days")
    return SEND


def digest_period(*, now: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """[start, end) of the last full week (Monday to Monday) before ``now``, in the site time zone."""
    local = now.astimezone(settings.site.tz)
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    start = monday - timedelta(days=7)
    return resolve_local_time(start, settings.site.tz), resolve_local_time(monday, settings.site.tz)


def digest_releases(
    *, releases: Iterable[Release], settings: Settings, now: datetime, first_seen: dict[str, datetime],
    approved: Callable[[Release], bool],
) -> list[Release]:
    """The releases of the weekly digest due at ``now``: first seen public in :func:`digest_period`,
    emailable, not too old, and approved by an editor where that is needed (``approved``)."""
    start, end = digest_period(now=now, settings=settings)
    chosen = []
    for release in releases:
        seen = first_seen.get(release.slug, release.date)
        if not (release.is_public(now) and start <= seen < end):
            continue
        if not release.channel("email").enabled or _too_old(release, seen, settings.email.max_age_days):
            continue
        if release.needs_approval(settings) and not approved(release):
            continue  # a rejected or unanswered release must not reach weekly readers by the back door
        chosen.append(release)
    return chosen


def embargo_decision(*, release: Release, settings: Settings, now: datetime, planned: bool,
                     approved: bool | None = None) -> Decision:
    """The embargoed email of ``release`` to the media list at ``now``.

    Only between ``embargo.notify`` and ``date``: before, it waits; at ``date`` journalists hear
    with everyone else. An approved release still waits for an editor where approval is needed
    (``approved``: the editor's answer, ``None`` when not asked yet); the one proof covers both emails.
    """
    embargo = release.embargo
    if embargo is None:
        return Decision("skip", "no embargo in front matter")
    if release.status != "approved":
        return Decision("skip", "the release is a draft")
    if now >= release.date:
        return Decision("skip", "public already: journalists hear of it with everyone")
    if now < embargo.notify:
        return Decision("skip", f"the media list hears of it at {embargo.notify.astimezone(settings.site.tz):%Y-%m-%d %H:%M %Z}")
    if planned or not release.needs_approval(settings):
        return SEND
    if approved is None:
        return Decision("approve", "an editor approves the journalist email first")
    return SEND if approved else NOT_APPROVED


def embargo_moved(*, release: Release | None, announced: Mapping[str, datetime], now: datetime) -> list[str]:
    """The journalists told another date than ``release``'s date now (``announced``: address -> the last
    date they were told): they hear "embargo moved", while it is still before its date."""
    if release is None or release.status != "approved" or now >= release.date:
        return []
    return [address for address, date in announced.items() if date != release.date]


def embargo_withdrawn(*, release: Release | None, announced: Mapping[str, datetime], file_exists: bool,
                      now: datetime) -> bool:
    """Whether the journalists who had an embargoed email hear that it is withdrawn: the release went back
    to draft, or its file is gone (a file that does not parse is no withdrawal), before the latest date
    they were told (after it, there is nothing left to hold back)."""
    if release is not None and (release.status != "draft" or not announced):
        return False
    if release is None and (file_exists or not announced):
        return False
    return now < max(announced.values())


# --------------------------------------------------------------------------- after publication


@dataclass(frozen=True)
class FollowUp:
    """One send after publication: a correction note or a withdrawal, on its own ledger channel."""

    channel: str  # e.g. ``email:correction:2`` (the second note), ``email:withdrawal``
    kind: Literal["correction", "withdrawal"]
    note: str
    date: datetime
    number: int = 0  # 1-based number of the correction note; 0 for a withdrawal


def email_follow_ups(*, release: Release, settings: Settings, first_seen: datetime) -> list[FollowUp]:
    """What readers of ``release``'s email are told after it went out, first seen public at ``first_seen``.

    Only notes written after that: a note already there when the release was first public
    describes a text its readers never saw uncorrected. ``email: {corrections: ...}`` overrides
    ``[email] send_corrections``; a withdrawal notice goes only with ``email: {withdrawal_notice: true}``.
    """
    options = release.channel("email")
    if not settings.email.enabled or not options.enabled:
        return []
    follow_ups = _new_corrections(release, settings, first_seen, channel="email")
    if release.withdrawn is not None and options.withdrawal_notice:
        follow_ups.append(FollowUp(channel="email:withdrawal", kind="withdrawal", note=release.withdrawn.reason,
                                   date=release.withdrawn.date))
    return follow_ups


def silent_edits(*, releases: Iterable[Release], published: dict[str, tuple[str | None, int]], now: datetime) -> list[str]:
    """Slugs of public releases whose text changed since they were last published, with no new correction note.

    ``published`` is slug -> (text digest, number of notes) as last published (Ledger.published_texts).
    """
    changed = []
    for release in releases:
        digest, notes = published.get(release.slug, (None, 0))
        if release.is_public(now) and digest is not None and digest != release.text_digest and len(release.corrections) <= notes:
            changed.append(release.slug)
    return changed


def vanished_releases(*, published: Iterable[str], present: Iterable[str]) -> list[str]:
    """Slugs that were published but have no release file any more (``present``: every slug read or guessed)."""
    seen = set(present)
    return sorted(slug for slug in published if slug not in seen)


def _new_corrections(release: Release, settings: Settings, first_seen: datetime, *, channel: str) -> list[FollowUp]:
    """Correction notes written after ``first_seen``, when ``email: {corrections}`` (else ``[email] send_corrections``) asks."""
    own = release.channel("email").corrections
    if not (settings.email.send_corrections if own is None else own):
        return []
    return [
        FollowUp(channel=f"{channel}:correction:{number}", kind="correction", note=c.note, date=c.date, number=number)
        for number, c in enumerate(release.corrections, start=1)
        if c.date > first_seen
    ]


def social_follow_ups(*, release: Release, settings: Settings, channel: str, threads: bool,
                      first_seen: datetime) -> list[tuple[FollowUp, Decision]]:
    """What an account that posted ``release`` (ledger ``channel``) does after publication.

    Withdrawn: its post is deleted, whatever else. Otherwise each new correction note is a reply
    to the post, on the networks whose posts have threads; elsewhere it is skipped, saying why.
    """
    if release.withdrawn is not None:
        return [(FollowUp(channel=f"{channel}:delete", kind="withdrawal", note=release.withdrawn.reason,
                          date=release.withdrawn.date), SEND)]
    network = channel.split(":")[1] if channel.count(":") >= 2 else channel
    skip = Decision("skip", f"{network} has no thread to reply in: post the correction there by hand")
    return [(follow_up, SEND if threads else skip) for follow_up in _new_corrections(release, settings, first_seen, channel=channel)]
