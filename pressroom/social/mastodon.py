"""Mastodon: statuses through the REST API, threads as replies, one ``Idempotency-Key`` per part.

The instance's own limits come from ``GET /api/v2/instance``
(``configuration.statuses.max_characters`` and ``characters_reserved_per_url``). A 429 carries
no Retry-After; ``X-RateLimit-Reset`` is an ISO-8601 time. Validation errors (422) carry
``{"error": "Validation failed: ..."}`` and are not retried. Mastodon keeps an
``Idempotency-Key`` for an hour, so a retry within that hour returns the same status; after
that, :meth:`Mastodon.find` looks for the release link in the account's recent statuses.
"""

from __future__ import annotations

import html
import re

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import Any

import httpx

from pressroom.errors import PermanentError
from pressroom.settings import Settings, SocialAccount
from pressroom.social.compose import MASTODON, Limits, Post
from pressroom.social.network import Published, http_client, require, retry_soon, send

__all__ = ["Mastodon", "mastodon_reset"]


def mastodon_reset(response: httpx.Response) -> datetime | None:
    """When the rate limit resets: ``X-RateLimit-Reset`` is ISO-8601 (``2024-08-01T12:05:00.000Z``)."""
    value = response.headers.get("X-RateLimit-Reset")
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class Mastodon:
    """One Mastodon account: ``base_url`` is the instance, ``token`` an access token with write:statuses."""

    name = "mastodon"
    forms = ("mastodon",)
    threads = True  # a correction can be a reply to the post

    def __init__(self, *, account: SocialAccount, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        require(
            account, "base_url", "token",
            hint="set base_url = \"https://your.instance\" in [[social]] and PRESSROOM_SOCIAL__… for the token",
        )
        self.account = account
        self._client = http_client(
            account=account,
            base_url=account.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {account.token.get_secret_value()}"},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"Mastodon(account={self.account.account!r}, base_url={self.account.base_url!r})"

    # ------------------------------------------------------------------ requests

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return send(self._client, method, path, network=self.name, reset_at=mastodon_reset, **kwargs)

    # ------------------------------------------------------------------ the interface

    @cached_property
    def _instance_limits(self) -> Limits:
        try:
            configuration = self._request("GET", "/api/v2/instance").json().get("configuration", {})
        except PermanentError:
            return MASTODON  # an old instance without v2: the documented defaults
        statuses = configuration.get("statuses", {})
        return replace(
            MASTODON,
            chars=int(statuses.get("max_characters", MASTODON.chars)),
            url_chars=int(statuses.get("characters_reserved_per_url", MASTODON.url_chars)),
        )

    def limits(self, form: str) -> Limits:
        return self._instance_limits

    def publish(self, post: Post, *, key: str) -> Published:
        ids: list[str] = []
        url = ""
        for index, part in enumerate(post.parts):
            data: dict[str, Any] = {"status": part.text, "visibility": "public", "language": post.language}
            if ids:
                data["in_reply_to_id"] = ids[-1]
            # The same key on every attempt: within an hour Mastodon answers with the status it already made.
            response = self._request("POST", "/api/v1/statuses", json=data, headers={"Idempotency-Key": f"{key}-{index}"})
            status = response.json()
            ids.append(str(status["id"]))
            url = url or status.get("url") or status.get("uri", "")
        # Read back once: a post reported as sent exists.
        self._request("GET", f"/api/v1/statuses/{ids[0]}")
        return Published(url=url, ids=tuple(ids))

    def find(self, post: Post, *, key: str) -> Published | None:
        me = self._request("GET", "/api/v1/accounts/verify_credentials").json()
        statuses = self._request(
            "GET", f"/api/v1/accounts/{me['id']}/statuses", params={"limit": 40, "exclude_replies": "true"}
        ).json()
        for status in statuses:
            card = status.get("card") or {}
            if post.card.url in status.get("content", "") or card.get("url") == post.card.url:
                return Published(url=status.get("url") or status.get("uri", ""), ids=(str(status["id"]),))
        return None

    def reply(self, *, to: str, text: str, key: str, when: datetime, language: str) -> Published:
        """``text`` as a public reply to the status at URL ``to``, read back. The thread is looked at
        first (Mastodon keeps an ``Idempotency-Key`` for an hour only), so a retry, however late,
        makes no second reply."""
        parent = _status_id(to)
        me = self._request("GET", "/api/v1/accounts/verify_credentials").json()["id"]
        for status in self._request("GET", f"/api/v1/statuses/{parent}/context").json().get("descendants", []):
            if (str(status.get("in_reply_to_id")) == parent and str(status.get("account", {}).get("id")) == str(me)
                    and _plain(status.get("content", "")) == " ".join(text.split())):
                return Published(url=status.get("url") or status.get("uri", ""), ids=(str(status["id"]),))
        data = {"status": text, "visibility": "public", "language": language, "in_reply_to_id": parent}
        status = self._request("POST", "/api/v1/statuses", json=data, headers={"Idempotency-Key": key}).json()
        self._request("GET", f"/api/v1/statuses/{status['id']}")
        return Published(url=status.get("url") or status.get("uri", ""), ids=(str(status["id"]),))

    def delete(self, *, urls: Sequence[str], post: Post) -> None:
        """Delete the statuses at ``urls`` and the account's own replies under them (thread parts,
        corrections); one already gone counts as deleted. Read back: none of them is left."""
        me = self._request("GET", "/api/v1/accounts/verify_credentials").json()["id"]
        ids = [_status_id(url) for url in urls]
        for status_id in list(ids):
            if self._exists(status_id):
                context = self._request("GET", f"/api/v1/statuses/{status_id}/context").json()
                ids += [str(s["id"]) for s in context.get("descendants", []) if str(s.get("account", {}).get("id")) == str(me)]
        for status_id in dict.fromkeys(reversed(ids)):  # replies first, the post last
            if self._exists(status_id):
                self._request("DELETE", f"/api/v1/statuses/{status_id}")
        if any(self._exists(status_id) for status_id in ids):
            raise retry_soon("mastodon: a deleted status can still be read")

    def _exists(self, status_id: str) -> bool:
        try:
            self._request("GET", f"/api/v1/statuses/{status_id}")
        except PermanentError as exc:
            if exc.message.startswith("mastodon: 404"):
                return False
            raise
        return True

    def engagement(self, url: str) -> tuple[int, int, int]:
        """(favourites, boosts, replies) of the status at ``url``, as the instance counts them now
        (GET /api/v1/statuses/:id: ``favourites_count``, ``reblogs_count``, ``replies_count``)."""
        status = self._request("GET", f"/api/v1/statuses/{_status_id(url)}").json()
        return int(status.get("favourites_count", 0)), int(status.get("reblogs_count", 0)), int(status.get("replies_count", 0))

    def verify(self) -> str:
        me = self._request("GET", "/api/v1/accounts/verify_credentials").json()
        return f"@{me.get('acct', me.get('username', '?'))} on {self.account.base_url}"

    def close(self) -> None:
        self._client.close()


def _plain(content: str) -> str:
    """A status's HTML as its words: Mastodon answers with ``<p>…</p>`` where it was sent plain text."""
    text = re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>|</p>\s*<p>", " ", content))
    return " ".join(html.unescape(text).split())


def _status_id(url: str) -> str:
    """The id of a status from its public URL (``https://instance/@press/1032...``) or URI (``.../statuses/1032...``)."""
    return url.rstrip("/").rsplit("/", 1)[-1]
