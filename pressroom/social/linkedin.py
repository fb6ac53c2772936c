"""LinkedIn: one post per release through the Posts API, with the release as an article card.

The commentary is in LinkedIn's "little" text format: the reserved characters
``\\ | { } @ [ ] ( ) < > # * _ ~`` are escaped with a backslash (unescaped, LinkedIn cuts the
post at the first one and still answers 201); hashtags become ``{hashtag|\\#|Tag}``; a co-issuer's
page is mentioned as ``@[Name](urn:li:organization:123)`` (linked only when Name is the page's own name).
LinkedIn has no idempotency key, so before any retry :meth:`LinkedIn.find` reads the author's
recent posts and looks for the release link.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from pressroom.errors import PermanentError
from pressroom.settings import Settings, SocialAccount
from pressroom.social.compose import LINKEDIN, Facet, Limits, Post, find_facets
from pressroom.social.network import Published, http_client, require, retry_soon, send

__all__ = ["LinkedIn", "little_text", "linkedin_reset"]

_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")


def _escape(text: str) -> str:
    return _RESERVED.sub(r"\\\1", text)


def little_text(text: str, *, facets: tuple[Facet, ...] | None = None) -> str:
    """Plain post text -> LinkedIn "little" commentary: reserved characters escaped, tags as templates,
    mentions (in ``facets``, the post part's own) as ``@[Name](urn:li:organization:…)``."""
    out: list[str] = []
    data = text.encode("utf-8")
    position = 0
    for facet in find_facets(text) if facets is None else facets:
        if facet.kind == "link":
            continue
        out.append(_escape(data[position : facet.start].decode("utf-8")))
        if facet.kind == "tag":
            out.append("{hashtag|\\#|" + _escape(facet.value) + "}")
        else:
            out.append(f"@[{_escape(data[facet.start : facet.end].decode('utf-8'))}]({facet.value})")
        position = facet.end
    out.append(_escape(data[position:].decode("utf-8")))
    return "".join(out)


def linkedin_reset(response: httpx.Response) -> datetime | None:
    """LinkedIn documents no reset header; honour a Retry-After when one is sent."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.isdigit():
        return datetime.now(UTC) + timedelta(seconds=int(value))
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


class LinkedIn:
    """One LinkedIn author (a person or an organization page): ``author_urn`` and an OAuth ``token``."""

    name = "linkedin"
    forms = ("linkedin",)
    threads = False  # a post's comments are not the author's thread: corrections are not posted there

    def __init__(self, *, account: SocialAccount, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        require(
            account, "author_urn", "token",
            hint="set author_urn = \"urn:li:organization:…\" in [[social]] and PRESSROOM_SOCIAL__… for the token",
        )
        self.account = account
        self._client = http_client(
            account=account,
            base_url=(account.base_url or "https://api.linkedin.com").rstrip("/"),
            headers={
                "Authorization": f"Bearer {account.token.get_secret_value()}",
                "LinkedIn-Version": account.api_version,
                "X-Restli-Protocol-Version": "2.0.0",
            },
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"LinkedIn(account={self.account.account!r}, author={self.account.author_urn!r})"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return send(self._client, method, path, network=self.name, reset_at=linkedin_reset, **kwargs)

    def limits(self, form: str) -> Limits:
        return LINKEDIN

    def _thumbnail(self, post: Post) -> str | None:
        """Upload the hero image (Images API) and return its URN; a card without it is still a card."""
        file = post.card.image_file
        if file is None or not file.is_file():
            return None
        started = self._request(
            "POST", "/rest/images", params={"action": "initializeUpload"},
            json={"initializeUploadRequest": {"owner": self.account.author_urn}},
        ).json()["value"]
        self._request("PUT", started["uploadUrl"], content=file.read_bytes())
        return str(started["image"])

    def publish(self, post: Post, *, key: str) -> Published:
        article: dict[str, Any] = {"source": post.card.url, "title": post.card.title, "description": post.card.description}
        thumbnail = self._thumbnail(post)
        if thumbnail:
            article["thumbnail"] = thumbnail
        body = {
            "author": self.account.author_urn,
            "commentary": little_text(post.parts[0].text, facets=post.parts[0].facets),
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "content": {"article": article},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        response = self._request("POST", "/rest/posts", json=body)
        urn = response.headers.get("x-restli-id") or response.headers.get("x-linkedin-id", "")
        # Read back once: a post reported as sent exists.
        self._request("GET", f"/rest/posts/{quote(urn, safe='')}")
        return Published(url=f"https://www.linkedin.com/feed/update/{urn}/", ids=(urn,))

    def find(self, post: Post, *, key: str) -> Published | None:
        found = self._request(
            "GET", "/rest/posts",
            params={"q": "author", "author": self.account.author_urn, "count": 20, "sortBy": "LAST_MODIFIED"},
            headers={"X-RestLi-Method": "FINDER"},
        ).json()
        for element in found.get("elements", []):
            article = (element.get("content") or {}).get("article") or {}
            if article.get("source") == post.card.url:
                urn = str(element["id"])
                return Published(url=f"https://www.linkedin.com/feed/update/{urn}/", ids=(urn,))
        return None

    def delete(self, *, urls: Sequence[str], post: Post) -> None:
        """Delete the posts at ``urls`` (``DELETE /rest/posts/{urn}``, 204); one already gone counts as deleted.
        Read back: each answers 404."""
        for url in urls:
            path = f"/rest/posts/{quote(_urn(url), safe='')}"
            if self._exists(path):
                self._request("DELETE", path, headers={"X-RestLi-Method": "DELETE"})
            if self._exists(path):
                raise retry_soon("linkedin: a deleted post can still be read")

    def _exists(self, path: str) -> bool:
        try:
            self._request("GET", path)
        except PermanentError as exc:
            if exc.message.startswith("linkedin: 404"):
                return False
            raise
        return True

    def verify(self) -> str:
        # Reading the author's posts needs the same token and permissions the read-back does.
        self._request(
            "GET", "/rest/posts", params={"q": "author", "author": self.account.author_urn, "count": 1},
            headers={"X-RestLi-Method": "FINDER"},
        )
        return f"{self.account.author_urn}"

    def close(self) -> None:
        self._client.close()


def _urn(url: str) -> str:
    """The post URN of ``https://www.linkedin.com/feed/update/urn:li:share:…/``."""
    return url.rstrip("/").rsplit("/", 1)[-1]
