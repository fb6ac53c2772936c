"""Aggregate link counts and social posts' counts read back: the numbers of the reach report.

A click is added to the hour it happened in, as a person's or a machine's, for the link of a
(release, channel, language). No row says who clicked, from where or with what: the folding of
repeated clicks happens before anything is written (:mod:`pressroom.reach`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from pressroom.db import dialect_insert, engine_for, link_clicks, post_counts
from pressroom.settings import Settings

__all__ = ["ClickRow", "Counts", "PostCount"]


@dataclass(frozen=True)
class ClickRow:
    """Clicks on one link of a (release, channel, language) in one hour."""

    release: str
    channel: str
    language: str
    link: str
    hour: datetime
    people: int
    machines: int


@dataclass(frozen=True)
class PostCount:
    """A social post's counts as its network gave them at one age (1h, 24h, 7d)."""

    release: str
    channel: str
    url: str
    age: str
    likes: int
    reposts: int
    replies: int
    read_at: datetime


def _link_key(link: str) -> str:
    return hashlib.sha256(link.encode()).hexdigest()[:32]


class Counts:
    """The counts in the Pressroom database. Safe to share between threads."""

    def __init__(self, *, settings: Settings) -> None:
        self._engine = engine_for(settings)

    def add(self, rows: Sequence[ClickRow]) -> None:
        """Add each row's people and machines to its link's hour, in one transaction (negative: a click
        moved from people to machines)."""
        summed: dict[tuple[str, str, str, str, datetime], list[int]] = {}
        for row in rows:  # one row per key: a statement never touches the same row twice
            delta = summed.setdefault((row.release, row.channel, row.language, row.link, row.hour), [0, 0])
            delta[0] += row.people
            delta[1] += row.machines
        if not summed:
            return
        with self._engine.begin() as conn:
            insert = dialect_insert(conn, link_clicks)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["release", "channel", "language", "link_key", "hour"],
                    set_={"people": link_clicks.c.people + insert.excluded.people,
                          "machines": link_clicks.c.machines + insert.excluded.machines},
                ),
                [{"release": release, "channel": channel, "language": language, "link_key": _link_key(link), "link": link,
                  "hour": hour, "people": people, "machines": machines}
                 for (release, channel, language, link, hour), (people, machines) in summed.items()],
            )

    def clicks(self, *, releases: Sequence[str] | None = None) -> list[ClickRow]:
        """Every counted hour of ``releases`` (all: None), oldest first."""
        query = select(link_clicks.c.release, link_clicks.c.channel, link_clicks.c.language, link_clicks.c.link,
                       link_clicks.c.hour, link_clicks.c.people, link_clicks.c.machines)
        if releases is not None:
            query = query.where(link_clicks.c.release.in_(list(releases)))
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(link_clicks.c.hour, link_clicks.c.release, link_clicks.c.link)).tuples()
            return [ClickRow(*row) for row in rows]

    def record_post(self, count: PostCount) -> bool:
        """Keep a post's counts at one age; False when that age was read already (the first reading stands)."""
        with self._engine.begin() as conn:
            return conn.execute(
                dialect_insert(conn, post_counts).values(
                    release=count.release, channel=count.channel, url=count.url, age=count.age, likes=count.likes,
                    reposts=count.reposts, replies=count.replies, read_at=count.read_at,
                ).on_conflict_do_nothing().returning(post_counts.c.age)
            ).first() is not None

    def posts(self, *, releases: Sequence[str] | None = None) -> list[PostCount]:
        """The counts read back for the posts of ``releases`` (all: None)."""
        query = select(post_counts)
        if releases is not None:
            query = query.where(post_counts.c.release.in_(list(releases)))
        with self._engine.connect() as conn:
            return [PostCount(**row) for row in conn.execute(query.order_by(post_counts.c.read_at)).mappings()]
