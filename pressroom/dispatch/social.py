"""Social networks as channels: a release posted on every account exactly once, corrections as
replies, a withdrawn release's posts deleted.

Each (release, account) is one ledger row: channel ``social:<network>:<account>``, recipient the
account's handle, sent by :func:`~pressroom.dispatch.deliver.deliver` through a
:class:`SocialChannel` (window 1: a post is ``sending`` only while its request is out). The
channel adapter calls the social room's clients (:mod:`pressroom.social.network`), which own
httpx. Unlike SMTP, a network can be asked whether a post exists: a row whose answer was lost (a
timeout after the request went out, a crash) is deferred, and because it was tried before, the
network is asked (:meth:`SocialNetwork.find`) before anything is posted again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pressroom import i18n
from pressroom.dispatch.decide import FollowUp, social_decision, social_follow_ups
from pressroom.dispatch.deliver import Delivered, Pacing, Send, deliver
from pressroom.dispatch.engine import Pushed, backoff
from pressroom.errors import PressroomError, RetryLater, TransientError, Unavailable
from pressroom.ledger import Delivery, Ledger
from pressroom.releases import Release
from pressroom.settings import Settings
from pressroom.social.compose import Post, compose_post
from pressroom.social.accounts import open_networks
from pressroom.social.network import Published, SocialNetwork, channel_name, idempotency_key, own_handle

__all__ = [
    "SocialChannel",
    "SocialFollowUpChannel",
    "SocialFollowUpPost",
    "SocialPost",
    "SocialReport",
    "SocialResult",
    "follow_up_releases",
    "post_releases",
]

MAX_ATTEMPTS = 8
UNKNOWN_RETRY = 60.0  # seconds before asking again after an answer that could not be read


@dataclass(frozen=True)
class SocialResult:
    """What happened to one release on one account in this run."""

    release: str
    channel: str
    state: str  # sent, already sent, deferred, failed, skipped, waiting, failed earlier
    detail: str  # the post URL, or the reason


@dataclass
class SocialReport:
    """Every (release, account) this run looked at."""

    results: list[SocialResult] = field(default_factory=list)

    @property
    def problems(self) -> list[SocialResult]:
        return [result for result in self.results if result.state in ("failed", "deferred")]

    @property
    def posted(self) -> list[SocialResult]:
        return [result for result in self.results if result.state == "sent"]

    def as_rows(self) -> list[dict[str, str]]:
        """Rows for the Prefect table artifact and the CLI."""
        return [
            {"release": r.release, "account": r.channel.removeprefix("social:"), "state": r.state, "post": r.detail}
            for r in self.results
        ]

    def as_text(self) -> str:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.state] = counts.get(result.state, 0) + 1
        summary = ", ".join(f"{state} {count}" for state, count in sorted(counts.items())) or "nothing to post"
        return f"social: {summary}"


# --------------------------------------------------------------------------- the channel adapters


def _post_one(network: SocialNetwork, posts: list[Post], *, key: str, tried_before: bool) -> Published:
    urls: list[str] = []
    for post in posts:
        part_key = f"{key}-{post.network}" if len(posts) > 1 else key
        published = network.find(post, key=part_key) if tried_before else None
        if published is None:
            published = network.publish(post, key=part_key)
        urls.append(published.url)
    return Published(url=" ".join(urls))


class SocialChannel:
    """One release on one account: renders the network's forms of the post, pushes them with read-back."""

    connections = 1
    window = 1
    max_attempts = MAX_ATTEMPTS
    # A network that is out of reach, in maintenance or rate-limiting the account is waited for without
    # spending attempts (nothing was posted), up to give_up_after; every other error spends one.
    give_up_after = timedelta(hours=72)
    resolves_ambiguous = True

    def __init__(self, *, release: Release, network: SocialNetwork, settings: Settings) -> None:
        # The account's language picks the version it posts; slug and ledger row are the release's.
        self.release, self.network, self.settings = release.version(network.account.language), network, settings
        self.name = channel_name(network.account)

    def render(self, delivery: Delivery) -> list[Post]:
        # Composed before the row is marked sending: a broken template or an unreachable instance
        # (Mastodon's limits) defers the row and nothing is posted.
        return [
            compose_post(release=self.release, network=form, limits=self.network.limits(form),
                         templates=self.settings.path("templates"), own=own_handle(self.network.account),
                         settings=self.settings)
            for form in self.network.forms
            if self.release.channel(form).enabled
        ]

    async def connect(self) -> SocialChannel:
        return self

    async def push(self, items: Sequence[tuple[Delivery, Any]]) -> list[Pushed]:
        return [await asyncio.to_thread(self._push_one, delivery, posts) for delivery, posts in items]

    def _push_one(self, delivery: Delivery, posts: list[Post]) -> Pushed:
        key = idempotency_key(slug=self.release.slug, channel=self.name, recipient=delivery.recipient)
        try:
            published = self._act(delivery, posts, key=key)
        except Unavailable as exc:
            return Pushed(id=delivery.id, status="throttled" if exc.rate_limit else "held", response=str(exc),
                          retry_at=exc.retry_at)
        except RetryLater as exc:
            return Pushed(id=delivery.id, status="retry", response=str(exc), retry_at=exc.retry_at)
        except PressroomError as exc:
            status = "retry" if isinstance(exc, TransientError) else "failed"
            return Pushed(id=delivery.id, status=status, response=str(exc))
        except Exception as exc:  # an unreadable answer: the post may exist, so look next time
            return Pushed(id=delivery.id, status="retry",
                          response=f"{self.network.name}: unexpected {type(exc).__name__}; the network is asked before a retry")
        return Pushed(id=delivery.id, status="sent", response=published.url)

    def _act(self, delivery: Delivery, posts: list[Post], *, key: str) -> Published:
        # Any earlier hand-over may have left the post or part of its thread: after a crash, a lost answer, an
        # outage (which spends no attempt) or the operator's retry (which resets them), the network is asked first.
        return _post_one(self.network, posts, key=key, tried_before=delivery.sending_at is not None)

    async def close(self) -> None:
        return None

    async def pace(self, count: int) -> None:
        return None

    def rejected(self, *, address: str, response: str) -> None:
        return None

    def backoff(self, attempts: int) -> timedelta:
        return backoff(base_seconds=UNKNOWN_RETRY, attempts=attempts)


class SocialFollowUpChannel(SocialChannel):
    """After publication, on one account that posted the release: a correction as a reply to the post,
    or the deletion of a withdrawn release's post and its replies. One ledger row, read back like a post."""

    def __init__(self, *, release: Release, network: SocialNetwork, settings: Settings, follow_up: FollowUp,
                 post_url: str, replies: Sequence[str]) -> None:
        super().__init__(release=release, network=network, settings=settings)
        self.name = follow_up.channel
        self.follow_up, self.post_url, self.replies = follow_up, post_url.split()[0], tuple(replies)

    def _act(self, delivery: Delivery, posts: list[Post], *, key: str) -> Published:
        if self.follow_up.kind == "withdrawal":
            # The post as composed tells each network its thread's parts; the replies are the corrections.
            self.network.delete(urls=(self.post_url, *self.replies), post=posts[0])
            return Published(url=f"deleted {self.post_url}")
        limit = self.network.limits(self.network.forms[0]).chars
        # In the language of the post it answers.
        language = self.release.language
        when = i18n.format_date(moment=self.follow_up.date, language=language, settings=self.settings)
        label = i18n.translations(language=language, settings=self.settings).gettext("Correction, %(date)s:")
        text = f"{label % {'date': when}} {self.follow_up.note}"
        text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
        return self.network.reply(to=self.post_url, text=text, key=key, when=self.follow_up.date,
                                  language=self.release.language)


# --------------------------------------------------------------------------- the sends


@dataclass(frozen=True)
class SocialPost(Send):
    """A release on one account, through the account's client (open for the caller's whole run)."""

    release: Release
    network: SocialNetwork = field(compare=False)
    resolves_ambiguous = True

    @property
    def key(self) -> str:
        return self.release.slug

    @property
    def channel(self) -> str:  # type: ignore[override]
        return channel_name(self.network.account)

    @property
    def recipient(self) -> str:
        account = self.network.account
        return account.handle or account.author_urn or account.account

    def plan(self, ledger: Ledger, now: datetime) -> int | None:
        return ledger.plan(release=self.release.slug, channel=self.channel, recipients=[self.recipient], now=now)

    def open(self, settings: Settings, ledger: Ledger) -> SocialChannel:
        return SocialChannel(release=self.release, network=self.network, settings=settings)

    def pacing(self, settings: Settings) -> Pacing:
        # The lease outlives a request and its read-back, so a live post never looks dead.
        return Pacing(batch_size=1, lease=timedelta(seconds=self.network.account.timeout * 3))


@dataclass(frozen=True)
class SocialFollowUpPost(SocialPost):
    """A correction reply, or the deletion of a withdrawn release's posts, on an account that posted it."""

    follow_up: FollowUp | None = None
    post_url: str = ""
    replies: tuple[str, ...] = ()
    posted_as: str = ""  # the recipient of the original row

    @property
    def channel(self) -> str:  # type: ignore[override]
        assert self.follow_up is not None
        return self.follow_up.channel

    @property
    def recipient(self) -> str:
        return self.posted_as

    def open(self, settings: Settings, ledger: Ledger) -> SocialFollowUpChannel:
        assert self.follow_up is not None
        return SocialFollowUpChannel(release=self.release, network=self.network, settings=settings,
                                     follow_up=self.follow_up, post_url=self.post_url, replies=self.replies)


# --------------------------------------------------------------------------- every account, every release


def post_releases(
    *,
    releases: Sequence[Release],
    settings: Settings,
    now: datetime,
    ledger: Ledger | None = None,
    run_id: str | None = None,
    transport: Any = None,
) -> SocialReport:
    """Post each release on each enabled account unless the ledger says it was posted.

    One HTTP client per network for the whole run. An unknown network in settings raises
    :class:`~pressroom.errors.ConfigError` before anything is sent; any other failure is
    recorded for its (release, account) and the others go on. A deferred post waits for
    the network's reset time: a later run takes it up. ``transport``: the networks' HTTP
    transport (tests put the networks' fakes there).
    """
    ledger = ledger or Ledger.from_settings(settings)
    report = SocialReport()
    networks = open_networks(settings=settings, transport=transport)
    try:
        for release in releases:
            for network in networks:
                send = SocialPost(release=release, network=network)
                decision = social_decision(
                    release=release, account=network.account, forms=network.forms, now=now,
                    planned=ledger.is_planned(release=release.slug, channel=send.channel),
                )
                if decision.skipped:
                    report.results.append(SocialResult(release.slug, send.channel, "skipped", decision.reason))
                    continue
                report.results.append(_result(ledger, send, deliver(send, settings=settings, now=now, run_id=run_id,
                                                                    ledger=ledger)))
    finally:
        for network in networks:
            network.close()
    return report


def follow_up_releases(
    *,
    releases: Sequence[Release],
    settings: Settings,
    now: datetime,
    first_seen: dict[str, datetime],
    ledger: Ledger | None = None,
    run_id: str | None = None,
    transport: Any = None,
) -> SocialReport:
    """Replies with new corrections and deletions of withdrawn releases, on every account that posted them, once each."""
    ledger = ledger or Ledger.from_settings(settings)
    report = SocialReport()
    networks = open_networks(settings=settings, transport=transport)
    try:
        for release in releases:
            if release.slug in first_seen:
                for network in networks:
                    report.results += _follow_up(release=release, network=network, settings=settings, ledger=ledger,
                                                 now=now, first_seen=first_seen[release.slug], run_id=run_id)
    finally:
        for network in networks:
            network.close()
    return report


def _follow_up(*, release: Release, network: SocialNetwork, settings: Settings, ledger: Ledger, now: datetime,
               first_seen: datetime, run_id: str | None) -> list[SocialResult]:
    original = channel_name(network.account)
    posted = _posted(ledger, release.slug, original)
    if not posted:
        return []  # nothing of it on this account: nothing to reply to or delete
    (recipient, post_url), = posted.items()
    results = []
    for follow_up, decision in social_follow_ups(release=release, settings=settings, channel=original,
                                                 threads=network.threads, first_seen=first_seen):
        if decision.skipped:
            results.append(SocialResult(release.slug, follow_up.channel, "skipped", decision.reason))
            continue
        replies = tuple(
            url
            for number in range(1, len(release.corrections) + 1)
            for url in _posted(ledger, release.slug, f"{original}:correction:{number}").values()
        )
        send = SocialFollowUpPost(release=release, network=network, follow_up=follow_up, post_url=post_url,
                                  replies=replies, posted_as=recipient)
        results.append(_result(ledger, send, deliver(send, settings=settings, now=now, run_id=run_id, ledger=ledger)))
    return results


def _posted(ledger: Ledger, release: str, channel: str) -> dict[str, str]:
    """Recipient -> what the network answered (the post's URL), for the rows of ``channel`` marked sent."""
    states = ledger.states(release=release, channel=channel)
    return {r: url for r, url in ledger.responses(release=release, channel=channel).items() if states.get(r) == "sent"}


def _result(ledger: Ledger, send: SocialPost, delivered: Delivered) -> SocialResult:
    """What this run did to (release, account), or, when it did nothing, what the ledger says of it."""
    release, channel, found, done = send.key, send.channel, delivered.report, delivered.done
    detail = "; ".join(response or state for _, _, state, response in found.problems)
    if done.sent:
        return SocialResult(release, channel, "sent", next(iter(ledger.responses(release=release, channel=channel).values())))
    if done.deferred or done.failed:
        return SocialResult(release, channel, "deferred" if done.deferred else "failed", detail)
    if found.sent:
        return SocialResult(release, channel, "already sent", "posted on an earlier run")
    state = "waiting" if found.deferred or found.pending or found.in_flight else "failed earlier"
    return SocialResult(release, channel, state, detail)
