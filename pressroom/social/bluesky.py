"""Bluesky (AT Protocol): records written to the account's PDS over XRPC.

Every part of a post gets a record key derived from the release (:func:`release_tid`, a valid
TID), so a post can be looked up before it is written: after an error, a timeout or a crash
the record is read with ``com.atproto.repo.getRecord`` and only created when it is missing.
Links, tags and mentions are facets at UTF-8 byte offsets (a mention names its account's DID, looked
up once with ``com.atproto.identity.resolveHandle`` and kept for 30 days in ``var/cache/bluesky-dids.json``); the release is an ``app.bsky.embed.external``
card whose thumb is the hero image uploaded as a blob of at most 1,000,000 bytes, a smaller JPEG when the
hero is larger (or, with
``embed = "image"``, the hero as an image with its alt text). A 429 says when to come back in
``RateLimit-Reset`` (epoch seconds).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from pressroom.errors import PermanentError, TransientError
from pressroom.settings import Settings, SocialAccount
from pressroom.social.compose import BLUESKY, Limits, Part, Post
from pressroom.social.network import Published, http_client, require, retry_soon, send

__all__ = ["Bluesky", "DidCache", "MAX_THUMB_BYTES", "bluesky_reset", "release_tid"]

COLLECTION = "app.bsky.feed.post"
MAX_THUMB_BYTES = 1_000_000
_S32 = "234567abcdefghijklmnopqrstuvwxyz"


def release_tid(*, slug: str, account: str, published: datetime, part: int = 0) -> str:
    """A valid TID (13 base32-sortable characters) that is the same on every run for this post.

    The timestamp is the release's publication time in microseconds, moved by a hash of the
    slug so releases published in the same minute differ; the clock id is hashed from slug
    and account. Parts of a thread follow one microsecond apart.
    """
    digest = int.from_bytes(hashlib.blake2b(f"{slug}\0{account}".encode(), digest_size=8).digest(), "big")
    micros = int(published.timestamp()) * 1_000_000 + (digest >> 10) % 62_500 * 16 + part
    value = (micros << 10) | (digest % 1024)
    chars = []
    for _ in range(13):
        chars.append(_S32[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def bluesky_reset(response: httpx.Response) -> datetime | None:
    """When the rate limit resets: ``RateLimit-Reset`` is in epoch seconds."""
    value = response.headers.get("RateLimit-Reset")
    try:
        return datetime.fromtimestamp(int(value), UTC) if value else None
    except (ValueError, OverflowError):
        return None


def _facets(part: Part, did_of: Callable[[str], str | None]) -> list[dict[str, Any]]:
    facets = []
    for facet in part.facets:
        if facet.kind == "link":
            feature = {"$type": "app.bsky.richtext.facet#link", "uri": facet.value}
        elif facet.kind == "tag":
            feature = {"$type": "app.bsky.richtext.facet#tag", "tag": facet.value}
        else:
            did = did_of(facet.value)
            if did is None:
                continue  # a handle nobody holds: the name stays in the text, unlinked
            feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
        facets.append({"index": {"byteStart": facet.start, "byteEnd": facet.end}, "features": [feature]})
    return facets


class DidCache:
    """Handle -> DID of mentioned accounts, in a small JSON file: a handle is looked up once, not
    on every post, and again after ``max_age`` (a handle can move to another account)."""

    def __init__(self, file: Path, *, max_age: timedelta = timedelta(days=30)) -> None:
        self.file, self.max_age = file, max_age
        try:
            self.entries: dict[str, list[str]] = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}  # missing or damaged: it only saves look-ups

    def get(self, handle: str, *, now: datetime) -> str | None:
        entry = self.entries.get(handle)
        try:
            fresh = entry is not None and now - datetime.fromisoformat(entry[1]) < self.max_age
        except (TypeError, ValueError, IndexError):
            fresh = False
        return entry[0] if fresh and entry else None

    def put(self, handle: str, did: str, *, now: datetime) -> None:
        self.entries[handle] = [did, now.isoformat()]
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}")
            temporary.write_text(json.dumps(self.entries, indent=1, sort_keys=True), encoding="utf-8")
            temporary.replace(self.file)
        except OSError:
            pass  # looked up again next time


class Bluesky:
    """One Bluesky account: ``handle`` and an app ``password``; ``base_url`` is its PDS."""

    name = "bluesky"
    forms = ("bluesky",)
    threads = True  # a correction can be a reply to the post

    def __init__(self, *, account: SocialAccount, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        require(
            account, "handle", "password",
            hint="set handle = \"name.bsky.social\" in [[social]] and an app password in PRESSROOM_SOCIAL__…",
        )
        self.account = account
        base_url = (account.base_url or "https://bsky.social").rstrip("/")
        self._client = http_client(account=account, base_url=base_url, transport=transport)
        self._did: str | None = None
        self._handle = account.handle
        self.max_thumb_bytes = MAX_THUMB_BYTES
        self.dids = DidCache(settings.path("var") / "cache" / "bluesky-dids.json")

    def __repr__(self) -> str:
        return f"Bluesky(account={self.account.account!r}, handle={self.account.handle!r})"

    # ------------------------------------------------------------------ requests

    def _request(self, method: str, nsid: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        if auth and self._did is None:
            self._login()
        try:
            return send(self._client, method, f"/xrpc/{nsid}", network=self.name, reset_at=bluesky_reset, **kwargs)
        except PermanentError as exc:
            if not (auth and "ExpiredToken" in exc.message):
                raise
        # The access token lives a few hours: log in again once, then repeat the request.
        self._login()
        return self._request(method, nsid, auth=False, **kwargs)

    def _login(self) -> None:
        # Logged in lazily, once per run: most runs have nothing to post, and sessions are rate limited.
        assert self.account.password is not None
        session = self._request(
            "POST", "com.atproto.server.createSession", auth=False,
            json={"identifier": self.account.handle, "password": self.account.password.get_secret_value()},
        ).json()
        self._did, self._handle = session["did"], session.get("handle", self._handle)
        self._client.headers["Authorization"] = f"Bearer {session['accessJwt']}"

    def did_of(self, handle: str) -> str | None:
        """The DID behind ``handle`` (cached), or None when the handle resolves to no account."""
        now = datetime.now(UTC)
        did = self.dids.get(handle, now=now)
        if did is None:
            try:
                did = self._request("GET", "com.atproto.identity.resolveHandle", auth=False, params={"handle": handle}).json()["did"]
            except PermanentError:
                return None
            self.dids.put(handle, did, now=now)
        return did

    def _get_record(self, rkey: str) -> dict[str, Any] | None:
        if self._did is None:
            self._login()
        try:
            return self._request(
                "GET", "com.atproto.repo.getRecord", params={"repo": self._did, "collection": COLLECTION, "rkey": rkey}
            ).json()
        except PermanentError as exc:
            if "RecordNotFound" in exc.message or "Could not locate record" in exc.message:
                return None
            raise

    def _blob(self, post: Post) -> dict[str, Any] | None:
        """The hero image as a blob, resized to fit the network's limit; ``None`` when there is none to fetch."""
        card = post.card
        if card.image_file is not None and card.image_file.is_file():
            data = card.image_file.read_bytes()
            mime = mimetypes.guess_type(card.image_file.name)[0] or "application/octet-stream"
        elif card.image_url:
            # The public site gets no Authorization header: the session token is for the PDS only.
            request = self._client.build_request("GET", card.image_url)
            request.headers.pop("Authorization", None)
            try:
                response = self._client.send(request)
            except httpx.HTTPError:
                return None
            if not response.is_success:
                return None
            data, mime = response.content, response.headers.get("Content-Type", "image/jpeg").split(";")[0]
        else:
            return None
        if len(data) > self.max_thumb_bytes:
            from pressroom.images import fit_bytes

            data, mime = fit_bytes(data, max_bytes=self.max_thumb_bytes)  # a smaller picture, never none
        return self._request("POST", "com.atproto.repo.uploadBlob", content=data, headers={"Content-Type": mime}).json()["blob"]

    def _embed(self, post: Post) -> dict[str, Any]:
        blob = self._blob(post)
        if self.account.embed == "image" and blob is not None:
            return {"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": post.card.image_alt}]}
        external: dict[str, Any] = {"uri": post.card.url, "title": post.card.title, "description": post.card.description}
        if blob is not None:
            external["thumb"] = blob
        return {"$type": "app.bsky.embed.external", "external": external}

    # ------------------------------------------------------------------ the interface

    def limits(self, form: str) -> Limits:
        return BLUESKY

    def rkeys(self, post: Post) -> list[str]:
        """The record key of every part of ``post``: derived from the release, the same on every run."""
        return [
            release_tid(slug=post.slug, account=self.account.account, published=post.published, part=index)
            for index in range(len(post.parts))
        ]

    def publish(self, post: Post, *, key: str) -> Published:
        refs: list[dict[str, str]] = []
        for index, rkey in enumerate(self.rkeys(post)):
            # Look before writing: after a crash or a timeout the record may already be there.
            existing = self._get_record(rkey)
            if existing is None:
                record: dict[str, Any] = {
                    "$type": COLLECTION,
                    "text": post.parts[index].text,
                    "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "langs": [post.language],
                }
                facets = _facets(post.parts[index], self.did_of)
                if facets:
                    record["facets"] = facets
                if index == 0:
                    record["embed"] = self._embed(post)
                else:
                    record["reply"] = {"root": refs[0], "parent": refs[-1]}
                try:
                    created = self._request(
                        "POST", "com.atproto.repo.createRecord",
                        json={"repo": self._did, "collection": COLLECTION, "rkey": rkey, "record": record},
                    ).json()
                except TransientError:
                    # The write may have happened before the error: check before anyone retries.
                    existing = self._get_record(rkey)
                    if existing is None:
                        raise
                    created = existing
                refs.append({"uri": created["uri"], "cid": created["cid"]})
            else:
                refs.append({"uri": existing["uri"], "cid": existing["cid"]})
        # Read back once: a post reported as sent exists.
        if self._get_record(self.rkeys(post)[0]) is None:
            raise retry_soon("bluesky: the post was created but cannot be read back")
        return Published(url=self._web_url(refs[0]["uri"]), ids=tuple(ref["uri"] for ref in refs))

    def find(self, post: Post, *, key: str) -> Published | None:
        # Found only when every part of the thread is there; otherwise publish() completes it.
        uris = []
        for rkey in self.rkeys(post):
            existing = self._get_record(rkey)
            if existing is None:
                return None
            uris.append(existing["uri"])
        return Published(url=self._web_url(uris[0]), ids=tuple(uris))

    def reply(self, *, to: str, text: str, key: str, when: datetime, language: str) -> Published:
        """``text`` as a reply to the post at ``to`` (its bsky.app URL), under a record key derived
        from ``key`` and ``when``: looked up before it is written, so it is written once."""
        rkey = release_tid(slug=key, account=self.account.account, published=when)
        existing = self._get_record(rkey)
        if existing is None:
            root = self._get_record(to.rstrip("/").rsplit("/", 1)[-1])
            if root is None:
                raise PermanentError(f"bluesky: the post {to} is gone: there is nothing to reply to",
                                     hint="post the correction by hand, or withdraw the release")
            ref = {"uri": root["uri"], "cid": root["cid"]}
            parent_reply = root.get("value", {}).get("reply")
            record = {
                "$type": COLLECTION, "text": text, "langs": [language],
                "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "reply": {"root": parent_reply["root"] if parent_reply else ref, "parent": ref},
            }
            try:
                self._request("POST", "com.atproto.repo.createRecord",
                              json={"repo": self._did, "collection": COLLECTION, "rkey": rkey, "record": record})
            except TransientError:
                if self._get_record(rkey) is None:  # the write may have happened before the error
                    raise
            existing = self._get_record(rkey)
            if existing is None:
                raise retry_soon("bluesky: the reply was created but cannot be read back")
        return Published(url=self._web_url(existing["uri"]), ids=(existing["uri"],))

    def delete(self, *, urls: Sequence[str], post: Post) -> None:
        """Delete every part of ``post``'s thread and the records at ``urls`` (replies); a record already
        gone counts as deleted. Read back: none of them is left."""
        rkeys = [*self.rkeys(post), *(url.rstrip("/").rsplit("/", 1)[-1] for url in urls)]
        for rkey in dict.fromkeys(reversed(rkeys)):  # replies first, the post last
            if self._get_record(rkey) is not None:
                self._request("POST", "com.atproto.repo.deleteRecord",
                              json={"repo": self._did, "collection": COLLECTION, "rkey": rkey})
        if any(self._get_record(rkey) is not None for rkey in rkeys):
            raise retry_soon("bluesky: a deleted record can still be read")

    def engagement(self, url: str) -> tuple[int, int, int]:
        """(likes, reposts, replies) of our post at ``url``, as the AppView counts them now
        (app.bsky.feed.getPosts, through the account's PDS: ``likeCount``, ``repostCount``, ``replyCount``)."""
        if self._did is None:
            self._login()
        uri = f"at://{self._did}/{COLLECTION}/{url.rstrip('/').rsplit('/', 1)[-1]}"
        found = self._request("GET", "app.bsky.feed.getPosts", params={"uris": uri}).json().get("posts", [])
        if not found:
            raise retry_soon(f"bluesky: {uri} is not (yet) known to the AppView")
        post = found[0]
        return int(post.get("likeCount", 0)), int(post.get("repostCount", 0)), int(post.get("replyCount", 0))

    def _web_url(self, uri: str) -> str:
        rkey = uri.rsplit("/", 1)[-1]
        return f"https://bsky.app/profile/{self._handle}/post/{rkey}"

    def verify(self) -> str:
        if self._did is None:
            self._login()
        return f"{self._handle} ({self._did}) on {self._client.base_url}"

    def close(self) -> None:
        self._client.close()
