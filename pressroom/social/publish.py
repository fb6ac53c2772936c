"""Post releases on every configured account, exactly once, through the ledger.

Each (release, account) is one ledger row: channel ``social:<network>:<account>``, recipient
the account's handle. A row is planned once, claimed, marked ``sending`` before the network is
called and finished ``sent`` (response: the post's URL), ``deferred`` (with the network's reset
time) or ``failed`` (with the network's message). A row left ``sending`` by a crash is
ambiguous for email; a social network can answer the question, so the row is put back and,
because it was tried before, the network is asked (:meth:`SocialNetwork.find`) before
anything is posted again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Sequence

import httpx

from pressroom.errors import PressroomError, TransientError
from pressroom.releases import Release
from pressroom.settings import Settings
from pressroom.social.compose import NETWORK_LIMITS, Post, compose_post
from pressroom.social.network import Published, RetryLater, SocialNetwork, channel_name, idempotency_key, open_networks

if TYPE_CHECKING:
    from pressroom.ledger import Ledger

__all__ = ["SocialReport", "SocialResult", "post_releases", "preview_posts", "preview_social"]

MAX_ATTEMPTS = 8
UNKNOWN_RETRY = timedelta(minutes=1)


@dataclass(frozen=True)
class SocialResult:
    """What happened to one release on one account in this run."""

    release: str
    channel: str
    state: str  # sent, already sent, deferred, failed, skipped
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


def _recipient(network: SocialNetwork) -> str:
    return network.account.handle or network.account.author_urn or network.account.account


def _compose(release: Release, network: SocialNetwork, settings: Settings) -> list[Post]:
    """One post per form of the network, leaving out networks disabled in the release's front matter."""
    return [
        compose_post(release=release, network=form, limits=network.limits(form), templates=settings.path("templates"))
        for form in network.forms
        if release.channel(form).enabled
    ]


def _post_one(network: SocialNetwork, posts: list[Post], *, key: str, tried_before: bool) -> Published:
    urls: list[str] = []
    for post in posts:
        part_key = f"{key}-{post.network}" if len(posts) > 1 else key
        published = network.find(post, key=part_key) if tried_before else None
        if published is None:
            published = network.publish(post, key=part_key)
        urls.append(published.url)
    return Published(url=" ".join(urls))


def post_releases(
    *,
    releases: Sequence[Release],
    settings: Settings,
    ledger: Ledger,
    now: datetime,
    transport: httpx.BaseTransport | None = None,
) -> SocialReport:
    """Post each release on each enabled account unless the ledger says it was posted.

    One HTTP client per network for the whole run. An unknown network in settings raises
    :class:`~pressroom.errors.ConfigError` before anything is sent; any other failure is
    recorded for its (release, account) and the others go on.
    """
    from pressroom.ledger import Outcome

    report = SocialReport()
    networks = open_networks(settings=settings, transport=transport)
    try:
        for release in releases:
            for network in networks:
                channel = channel_name(network.account)
                recipient = _recipient(network)
                if not any(release.channel(form).enabled for form in network.forms):
                    report.results.append(SocialResult(release.slug, channel, "skipped", "disabled in front matter"))
                    continue
                max_age = network.account.max_age_days
                if (
                    max_age is not None
                    and release.date < now - timedelta(days=max_age)
                    and not ledger.is_planned(release=release.slug, channel=channel)
                ):
                    # A new account does not post the whole archive: only releases younger than max_age_days.
                    report.results.append(SocialResult(release.slug, channel, "skipped", f"older than {max_age:g} days"))
                    continue
                if ledger.ambiguous(release=release.slug, channel=channel):
                    # Left "sending" by a crash: the network is asked before anything is posted again.
                    ledger.retry_ambiguous(now=now, release=release.slug, channel=channel)
                ledger.plan(release=release.slug, channel=channel, recipients=[recipient], now=now)
                worker, rows = ledger.claim(release=release.slug, channel=channel, limit=1, now=now)
                if not rows:
                    report.results.append(_earlier(ledger, release.slug, channel))
                    continue
                row = rows[0]
                try:
                    # Composed before the row is marked sending: a broken template or an unreachable
                    # instance leaves the claim to expire, and the next run tries again.
                    posts = _compose(release, network, settings)
                except PressroomError as exc:
                    state = "deferred" if isinstance(exc, TransientError) else "failed"
                    report.results.append(SocialResult(release.slug, channel, state, f"not composed: {exc}"))
                    continue
                if not ledger.begin_sending(ids=[row.id], worker=worker, now=now):
                    continue
                key = idempotency_key(slug=release.slug, channel=channel, recipient=recipient)
                try:
                    published = _post_one(network, posts, key=key, tried_before=row.attempts > 0)
                except RetryLater as exc:
                    outcome = Outcome(id=row.id, state="deferred", response=str(exc), retry_at=exc.retry_at)
                except TransientError as exc:
                    outcome = Outcome(id=row.id, state="deferred", response=str(exc), retry_at=now + UNKNOWN_RETRY)
                except PressroomError as exc:
                    outcome = Outcome(id=row.id, state="failed", response=str(exc))
                except Exception as exc:  # noqa: BLE001 - an unreadable answer: the post may exist, so look next time
                    outcome = Outcome(
                        id=row.id, state="deferred", retry_at=now + UNKNOWN_RETRY,
                        response=f"{network.name}: unexpected {type(exc).__name__}; the network is asked before a retry",
                    )
                else:
                    outcome = Outcome(id=row.id, state="sent", response=published.url)
                ledger.finish(outcomes=[outcome], now=now, max_attempts=MAX_ATTEMPTS)
                report.results.append(SocialResult(release.slug, channel, outcome.state, outcome.response))
    finally:
        for network in networks:
            network.close()
    return report


def _earlier(ledger: Ledger, release: str, channel: str) -> SocialResult:
    """Nothing to do for this row in this run: say why (posted before, waiting for a retry, failed before)."""
    found = ledger.report(release=release, channel=channel)
    if found.sent:
        return SocialResult(release, channel, "already sent", "posted on an earlier run")
    detail = "; ".join(response or state for _, _, state, response in found.problems)
    state = "waiting" if found.deferred or found.pending else "failed earlier"
    return SocialResult(release, channel, state, detail)


def preview_posts(*, release: Release, settings: Settings) -> list[tuple[str, Post]]:
    """(account channel, post) for every enabled account, composed with each network's default limits.

    Nothing is sent and no network is asked, so a preview works offline.
    """
    previews = []
    for account in settings.social:
        if not account.enabled:
            continue
        forms = ("mastodon", "bluesky", "linkedin") if account.network == "outbox" else (account.network,)
        for form in forms:
            if form in NETWORK_LIMITS and release.channel(form).enabled:
                templates = settings.path("templates")
                post = compose_post(release=release, network=form, limits=NETWORK_LIMITS[form], templates=templates)
                previews.append((channel_name(account), post))
    return previews


def preview_social(*, release: Release, settings: Settings) -> str:
    """Every post of ``release`` as a person would read it, each part with its count against the limit."""
    blocks = []
    for channel, post in preview_posts(release=release, settings=settings):
        limits = post.limits
        unit = "graphemes" if limits.unit == "graphemes" else "characters"
        lines = [f"== {post.network} ({channel}): {len(post.parts)} post{'s' if len(post.parts) > 1 else ''}"]
        for index, part in enumerate(post.parts, start=1):
            measure = f"{part.count}/{limits.chars} {unit}"
            if limits.bytes:
                measure += f", {part.bytes}/{limits.bytes} bytes"
            if limits.url_chars:
                measure += f" (every URL counts as {limits.url_chars})"
            lines += [f"-- part {index}/{len(post.parts)}: {measure}", part.text]
        card = post.card
        image = f"; image {card.image_url} (alt: {card.image_alt})" if card.image_url else ""
        lines.append(f"-- card: {card.title} <{card.url}>{image}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no social account is enabled"
