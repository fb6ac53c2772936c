"""The embedded default network: every post as a JSON file under ``var/outbox/social/``.

It writes the release in the form of every real network (Mastodon, Bluesky, LinkedIn), so a
comms officer sees exactly what each would receive before any account is configured:
``var/outbox/social/<slug>/<account>-<network>.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from pressroom.errors import TransientError
from pressroom.settings import Settings, SocialAccount
from pressroom.social.compose import NETWORK_LIMITS, Limits, Post
from pressroom.social.network import Published

__all__ = ["Outbox", "post_as_json"]


def post_as_json(post: Post, *, key: str, account: str) -> dict[str, Any]:
    """The JSON written for ``post``: text, counts against the limits, facets and card of every part."""
    card = post.card
    return {
        "network": post.network,
        "account": account,
        "release": post.slug,
        "idempotency_key": key,
        "language": post.language,
        "limits": {"chars": post.limits.chars, "bytes": post.limits.bytes, "url_chars": post.limits.url_chars},
        "parts": [
            {
                "text": part.text,
                "count": part.count,
                "bytes": part.bytes,
                "facets": [
                    {"kind": facet.kind, "byte_start": facet.start, "byte_end": facet.end, "value": facet.value}
                    for facet in part.facets
                ],
                "reply_to": index - 1 if index else None,
            }
            for index, part in enumerate(post.parts)
        ],
        "card": {
            "url": card.url,
            "title": card.title,
            "description": card.description,
            "image": card.image_url,
            "image_alt": card.image_alt,
        },
    }


class Outbox:
    """Writes posts as files; "posting" twice rewrites the same file with the same bytes."""

    name = "outbox"
    forms = ("mastodon", "bluesky", "linkedin")
    threads = True  # a correction is written beside the post, as the reply it would be

    def __init__(self, *, account: SocialAccount, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.account = account
        self.folder = settings.path("var") / "outbox" / "social"

    def __repr__(self) -> str:
        return f"Outbox(account={self.account.account!r}, folder={str(self.folder)!r})"

    def limits(self, form: str) -> Limits:
        return NETWORK_LIMITS[form]

    def _path(self, post: Post) -> Path:
        return self.folder / post.slug / f"{self.account.account}-{post.network}.json"

    def publish(self, post: Post, *, key: str) -> Published:
        path = self._path(post)
        _write(path, post_as_json(post, key=key, account=self.account.account))
        published = self.find(post, key=key)
        if published is None:  # read back what was just written: a post reported as sent exists
            raise TransientError(f"outbox: {path} cannot be read back after writing it")
        return published

    def find(self, post: Post, *, key: str) -> Published | None:
        path = self._path(post)
        try:
            written = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if written.get("idempotency_key") != key:
            return None
        return Published(url=path.as_uri(), ids=(str(path),))

    def reply(self, *, to: str, text: str, key: str, when: datetime, language: str) -> Published:
        path = self.folder / Path(to.removeprefix("file://")).parent.name / f"{self.account.account}-reply-{key}.json"
        _write(path, {"in_reply_to": to, "text": text, "language": language, "idempotency_key": key,
                      "created_at": when.isoformat()})
        return Published(url=path.as_uri(), ids=(str(path),))

    def delete(self, *, urls: Sequence[str], post: Post) -> None:
        # The post in every network's form and its replies: a withdrawn release leaves no file behind.
        for path in (self.folder / post.slug).glob(f"{self.account.account}-*.json"):
            path.unlink(missing_ok=True)

    def verify(self) -> str:
        return f"files under {self.folder}"

    def close(self) -> None:
        """Nothing to release."""


def _write(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(content, ensure_ascii=False, indent=2) + "\n"
    # Write then rename, so a crash never leaves half a post behind.
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(data, encoding="utf-8")
    os.replace(temporary, path)
