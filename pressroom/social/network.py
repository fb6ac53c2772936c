"""The one small interface every social network implements, and what they share.

A network is chosen by name from ``[[social]]`` accounts in settings; an unknown name fails
in :func:`pressroom.social.accounts.open_networks` before anything is sent. Each network maps its HTTP failures
into the tree of :mod:`pressroom.errors`: :class:`Unavailable` (the network is out of reach, in
maintenance or rate-limits the account: nothing was posted, so the wait spends no attempt),
:class:`RetryLater` (a ``TransientError`` that knows when the network will accept requests again)
or ``PermanentError`` (carrying the network's own message, never retried).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from collections.abc import Sequence
from typing import Any, Protocol
from collections.abc import Callable

import httpx

from pressroom.errors import ConfigError, PermanentError, RetryLater, TransientError, Unavailable
from pressroom.settings import SocialAccount
from pressroom.social.compose import Limits, Post

__all__ = [
    "Published",
    "SocialNetwork",
    "channel_name",
    "error_for",
    "http_client",
    "idempotency_key",
    "message_of",
    "own_handle",
    "require",
    "retry_soon",
    "send",
]

DEFAULT_RETRY = timedelta(seconds=60)


@dataclass(frozen=True)
class Published:
    """A post that exists on its network: its public URL and the id of every part of the thread."""

    url: str
    ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


class SocialNetwork(Protocol):
    """One account on one network. ``forms`` are the networks whose rules its posts follow."""

    name: str
    account: SocialAccount
    forms: tuple[str, ...]

    def limits(self, form: str) -> Limits:
        """The length rules for posts in ``form`` (Mastodon asks its instance)."""
        ...

    def publish(self, post: Post, *, key: str) -> Published:
        """Create ``post`` (all its parts) and read it back; safe to call again with the same ``key``."""
        ...

    def find(self, post: Post, *, key: str) -> Published | None:
        """The post if it already exists on the network (after a crash or an ambiguous error)."""
        ...

    threads: bool  # whether a correction can be posted as a reply to the post

    def reply(self, *, to: str, text: str, key: str, when: datetime, language: str) -> Published:
        """Post ``text`` as a reply to the post at URL ``to`` and read it back; safe to call again with the same ``key``."""
        ...

    def delete(self, *, urls: Sequence[str], post: Post) -> None:
        """Delete ``post`` (every part) and the posts at ``urls``; gone already counts as deleted; read back."""
        ...

    def verify(self) -> str:
        """Log in / check the credentials without posting; returns who the account is (for ``pressroom doctor``)."""
        ...

    def close(self) -> None:
        """Release connections; the network is not used afterwards."""
        ...


def channel_name(account: SocialAccount) -> str:
    """The ledger channel of an account, e.g. ``social:bluesky:default``."""
    return f"social:{account.network}:{account.account}"


def own_handle(account: SocialAccount) -> str | None:
    """Who the account is on its network, so its posts do not mention it as a co-issuer."""
    return account.author_urn or account.handle


def idempotency_key(*, slug: str, channel: str, recipient: str) -> str:
    """A stable key for the post of one release on one account (one ledger row), the same on every run."""
    digest = hashlib.blake2b(f"{slug}\0{channel}\0{recipient}".encode(), digest_size=16).hexdigest()
    return f"pressroom-{digest}"


def retry_soon(message: str) -> TransientError:
    """A timeout or a dropped connection: the answer is unknown, so look (or retry) a little later.

    When is the send loop's to say (its backoff, on the run's clock), so a run with ``--now``
    retries on its own timeline."""
    return TransientError(message, hint="nothing to do: the post is retried on a later run")


def require(account: SocialAccount, *fields: str, hint: str) -> None:
    """Fail before anything is sent when an account lacks what its network needs."""
    if not all(getattr(account, name) for name in fields):
        raise ConfigError(f"social: {account.network} account {account.account!r} needs {' and '.join(fields)}", hint=hint)


def http_client(*, account: SocialAccount, base_url: str, headers: dict[str, str] | None = None,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The one httpx client of a network for a run, with timeouts (never without)."""
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": "Pressroom (+https://github.com/pressroom)", **(headers or {})},
        timeout=httpx.Timeout(account.timeout, connect=min(10.0, account.timeout)),
        transport=transport,
        follow_redirects=False,
    )


def error_for(
    response: httpx.Response,
    *,
    network: str,
    message: str,
    reset_at: Callable[[httpx.Response], datetime | None],
    now: datetime | None = None,
) -> PermanentError | RetryLater | Unavailable:
    """Map a failed response to the error tree: 429/503 -> :class:`Unavailable`, other 5xx and 408 ->
    :class:`RetryLater` (the post may exist: it is looked for before a retry), other 4xx -> PermanentError."""
    now = now or datetime.now(UTC)
    status = response.status_code
    if status in (429, 503):
        # Refused before the post was looked at: a rate limit, or the network down for maintenance.
        said = reset_at(response)
        what = "rate limit reached" if status == 429 else "server error 503 (unavailable)"
        retry_at = max(said, now) if said else (now + DEFAULT_RETRY if status == 429 else None)
        return Unavailable(f"{network}: {what}: {message}", retry_at=retry_at, rate_limit=status == 429)
    if status >= 500 or status == 408:
        retry_at = reset_at(response) or (now + DEFAULT_RETRY)
        return RetryLater(f"{network}: server error {status}: {message}", retry_at=max(retry_at, now))
    if status in (401, 403):
        return PermanentError(
            f"{network}: {status} {message}",
            hint=f"check the {network} credentials (PRESSROOM_SOCIAL__… or the Prefect Secret block) and their permissions",
        )
    return PermanentError(f"{network}: {status} {message}", hint="the network refused the post; fix it and rerun")


def message_of(response: httpx.Response) -> str:
    """The network's own words from an error body (Mastodon ``error``, Bluesky ``error`` + ``message``,
    LinkedIn ``message``), or the HTTP reason when the body is not JSON."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    if not isinstance(body, dict):
        return str(body)
    words = [str(body[key]) for key in ("error", "message", "error_description") if body.get(key)]
    return ": ".join(dict.fromkeys(words)) or str(body)


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    network: str,
    reset_at: Callable[[httpx.Response], datetime | None],
    **kwargs: Any,
) -> httpx.Response:
    """One request: no connection -> :class:`Unavailable`; a timeout or a dropped connection ->
    :func:`retry_soon`; a failure -> :func:`error_for`."""
    try:
        response = client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # before a byte of the request was sent
        raise Unavailable(f"{network}: {method} {url}: cannot connect ({type(exc).__name__})") from None
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise retry_soon(f"{network}: {method} {url}: {type(exc).__name__}") from None
    if response.is_success:
        return response
    raise error_for(response, network=network, message=message_of(response), reset_at=reset_at)
