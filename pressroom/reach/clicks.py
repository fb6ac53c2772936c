"""Counting a click: people or machines, repeats folded with a day's key kept only in memory."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pressroom.tokens import LinkCount

__all__ = ["Click", "ClickCounter", "is_scanner"]

# Known scanners, link-preview fetchers and scripts: security gateways (Proofpoint, Mimecast,
# Barracuda...), previews of chats and networks (bots; a Mastodon server fetching a card: http.rb;
# Bluesky's cardyb), HTTP libraries, headless browsers. Apps' own browsers (LinkedInApp, FBAV) are people.
_SCANNERS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scan|preview|proofpoint|mimecast|barracuda|safelinks|urldefense|fireeye|"
    r"ironport|symantec|trendmicro|sophos|forcepoint|zscaler|cisco|http\.rb|mastodon/|pleroma|akkoma|misskey|"
    r"cardyb|facebookexternalhit|whatsapp|google-safety|"
    r"python|curl/|wget/|go-http-client|httpx|aiohttp|okhttp|java/|libwww|node-fetch|axios|headless",
    re.IGNORECASE,
)
# Distinct links of one message followed within the burst window that make a client a machine.
_BURST_LINKS = 3
# The day's folded clicks kept in memory at most; past it the day starts over (a click may count twice).
_MAX_FOLDS = 500_000


def is_scanner(user_agent: str) -> bool:
    """Whether ``user_agent`` is a machine's: a known scanner, preview fetcher or script, or none at all."""
    return not user_agent.strip() or _SCANNERS.search(user_agent) is not None


@dataclass(frozen=True)
class Click:
    """What to add to the counts: a link's people or machines in an hour (negative: moved away)."""

    link: LinkCount
    hour: datetime
    people: int = 0
    machines: int = 0


@dataclass
class _Recent:
    at: datetime
    link: LinkCount
    hour: datetime
    person: bool


class ClickCounter:
    """Decides what one followed link adds to the counts; remembers, for one day, only keyed hashes."""

    def __init__(self, *, burst: timedelta) -> None:
        self.burst = burst
        self._lock = threading.Lock()
        self._day: date | None = None
        self._key = b""
        self._folds: set[bytes] = set()
        self._recent: dict[bytes, deque[_Recent]] = {}

    def _today(self, now: datetime) -> None:
        if now.date() != self._day:  # a new day: a new key, and yesterday's hashes are gone with the old one
            self._day, self._key = now.date(), secrets.token_bytes(32)
            self._folds.clear()
            self._recent.clear()

    def _hash(self, *parts: str) -> bytes:
        return hmac.new(self._key, "\x00".join(parts).encode("utf-8", "replace"), hashlib.sha256).digest()[:16]

    def click(self, *, link: LinkCount, client: str, user_agent: str, head: bool, now: datetime) -> list[Click]:
        """What following ``link`` at ``now`` adds; ``client`` and ``user_agent`` are only hashed, in memory."""
        hour = now.replace(minute=0, second=0, microsecond=0)
        with self._lock:
            self._today(now)
            if head or is_scanner(user_agent):
                return [Click(link=link, hour=hour, machines=1)]
            visitor = self._hash(client, user_agent)
            moved = self._burst(visitor, link, hour, now)
            if moved is not None:
                return [*moved, Click(link=link, hour=hour, machines=1)]
            fold = self._hash(visitor.hex(), link.release, link.link, link.channel, link.language)
            if fold in self._folds:
                return []
            if len(self._folds) >= _MAX_FOLDS:
                self._folds.clear()
            self._folds.add(fold)
            self._recent[visitor][-1].person = True
            return [Click(link=link, hour=hour, people=1)]

    def _burst(self, visitor: bytes, link: LinkCount, hour: datetime, now: datetime) -> list[Click] | None:
        """The clicks to move to the machines when this one completes a burst; None when it does not."""
        if visitor not in self._recent and len(self._recent) >= _MAX_FOLDS:
            self._recent.clear()
        recent = self._recent.setdefault(visitor, deque())
        while recent and now - recent[0].at > self.burst:
            recent.popleft()
        recent.append(_Recent(at=now, link=link, hour=hour, person=False))
        message = (link.release, link.channel, link.language)
        same = [r for r in recent if (r.link.release, r.link.channel, r.link.language) == message]
        if len({r.link.link for r in same}) < _BURST_LINKS:
            return None
        moved = [Click(link=r.link, hour=r.hour, people=-1, machines=1) for r in same if r.person]
        for r in same:
            r.person = False
        return moved
