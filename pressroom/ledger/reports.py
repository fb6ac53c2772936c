"""The ledger's read side: what was sent where, in counts and rows, for reports and for the channels that look back.

Nothing here writes. :class:`~pressroom.ledger.Ledger` (the write side: plan, claim, advance)
is a :class:`Reports`, so every caller reads through the one object it already holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from sqlalchemy import and_, case, func, literal, or_, select

from pressroom.db import complaints, deliveries, delivery_conflicts, engine_for, engine_for_url, plans
from pressroom.settings import Settings

__all__ = ["DeliveryReport", "Reports"]


@dataclass
class DeliveryReport:
    """Counts per state for a release/channel (or everything), and the rows that need a look.

    ``counts`` holds the ledger states, except that ``sending`` rows are split by their
    sender: ``in flight`` while it is alive, counted as ``ambiguous`` once its lease ran out.
    """

    release: str | None
    channel: str | None
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str, str, str]] = field(default_factory=list)  # release, recipient, state, response
    skipped: str = ""
    sent_now: int | None = None  # sent by the run that made this report (the counts are all-time)
    conflicts: int = 0  # outcomes a sender reported for rows it no longer held
    error: str = ""  # why the run stopped early (the rows stay due for the next run)

    def _n(self, state: str) -> int:
        return self.counts.get(state, 0)

    @property
    def sent(self) -> int:
        return self._n("sent")

    @property
    def deferred(self) -> int:
        return self._n("deferred")

    @property
    def failed(self) -> int:
        return self._n("failed")

    @property
    def suppressed(self) -> int:
        return self._n("suppressed")

    @property
    def ambiguous(self) -> int:
        return self._n("ambiguous")

    @property
    def in_flight(self) -> int:
        return self._n("in flight")

    @property
    def pending(self) -> int:
        return self._n("planned") + self._n("claimed")

    @property
    def in_digest(self) -> int:
        return self._n("digest")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_text(self) -> str:
        """One line for logs and the CLI."""
        what = " ".join(part for part in (self.release, self.channel) if part) or "all"
        if self.skipped:
            return f"{what}: skipped ({self.skipped})"
        return (
            f"{what}: sent {self.sent}" + ("" if self.sent_now is None else f" ({self.sent_now} this run)")
            + f", deferred {self.deferred}, failed {self.failed}, "
            f"suppressed {self.suppressed}, ambiguous {self.ambiguous}, pending {self.pending}"
            + (f", in flight {self.in_flight}" if self.in_flight else "")
            + (f", in digest {self.in_digest}" if self.in_digest else "")
            + (f", conflicts {self.conflicts}" if self.conflicts else "")
            + (f"; stopped: {self.error}" if self.error else "")
        )

    def as_rows(self) -> list[dict[str, str | int]]:
        """Rows for a table (Prefect table artifact, CLI)."""
        labels = [("sent", "sent"), ("deferred", "deferred"), ("failed", "failed (bounced)"),
                  ("suppressed", "suppressed"), ("ambiguous", "ambiguous"), ("in flight", "in flight"),
                  ("planned", "pending"), ("digest", "in digest")]
        rows: list[dict[str, str | int]] = [{"state": label, "count": self._n(state)} for state, label in labels]
        if self.conflicts:
            rows.append({"state": "conflicts", "count": self.conflicts})
        return rows



class Reports:
    """Reads of the deliveries in the Pressroom database. Safe to share between threads."""

    def __init__(self, *, url: str) -> None:
        self._engine = engine_for_url(url)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Connect (and migrate) the database named by ``settings.db_url``."""
        engine_for(settings)
        return cls(url=settings.db_url)

    def complaint_rates(self, *, release: str | None = None, channel: str | None = None) -> list[tuple[str, int, int]]:
        """(release, complaints, emails delivered) for each release with a complaint or, with ``release``, that one."""
        where = _scope(release, channel)
        with self._engine.connect() as conn:
            counted = dict(conn.execute(
                select(deliveries.c.release, func.count())
                .select_from(complaints.join(deliveries, deliveries.c.id == complaints.c.delivery_id))
                .where(*where).group_by(deliveries.c.release)
            ).tuples().all())
            names = sorted(set(counted) | ({release} if release is not None else set()))
            if not names:
                return []
            delivered = dict(conn.execute(
                select(deliveries.c.release, func.count())
                .where(*where, deliveries.c.release.in_(names), deliveries.c.state == "sent", deliveries.c.channel.not_like("social:%"))
                .group_by(deliveries.c.release)
            ).tuples().all())
        return [(name, int(counted.get(name, 0)), int(delivered.get(name, 0))) for name in names]


    def report(self, *, release: str | None = None, channel: str | None = None, run_id: str | None = None,
               now: datetime | None = None, problems: int = 100) -> DeliveryReport:
        """Counts per state and up to ``problems`` rows that were not sent (with the server's answer).

        With ``run_id``, ``sent_now`` is what that run (or worker) sent itself.
        """
        now = now or datetime.now(UTC)
        where = _scope(release, channel)
        dead = and_(deliveries.c.state == "sending", or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now))
        label = case((dead, literal("ambiguous")), (deliveries.c.state == "sending", literal("in flight")),
                     else_=deliveries.c.state)
        with self._engine.connect() as conn:
            counts = dict(conn.execute(select(label, func.count()).where(*where).group_by(label)).tuples().all())
            rows = conn.execute(
                select(deliveries.c.release, deliveries.c.recipient, label, deliveries.c.response)
                .where(*where, deliveries.c.state.in_(("failed", "suppressed", "deferred", "ambiguous", "sending")))
                .order_by(deliveries.c.id)
                .limit(problems)
            ).tuples().all()
            conflicts = conn.execute(
                select(func.count()).select_from(delivery_conflicts.join(deliveries, deliveries.c.id == delivery_conflicts.c.delivery_id))
                .where(*where)
            ).scalar_one()
            sent_now = None
            if run_id is not None:
                sent_now = int(conn.execute(
                    select(func.count()).where(*where, deliveries.c.run_id == run_id, deliveries.c.state == "sent")
                ).scalar_one())
        return DeliveryReport(release=release, channel=channel, counts={k: int(v) for k, v in counts.items()},
                              problems=list(rows), conflicts=int(conflicts), sent_now=sent_now)

    def ambiguous(self, *, release: str | None = None, channel: str | None = None,
                  now: datetime | None = None) -> list[tuple[str, str, str]]:
        """(release, channel, recipient) of every ambiguous row: maybe sent, maybe not, and no sender alive."""
        with self._engine.connect() as conn:
            return list(conn.execute(
                select(deliveries.c.release, deliveries.c.channel, deliveries.c.recipient)
                .where(*_scope(release, channel), _unresolved(now or datetime.now(UTC))).order_by(deliveries.c.id)
            ).tuples())


    def conflicts(self, *, release: str | None = None, channel: str | None = None) -> list[tuple[str, str, str, str]]:
        """(release, recipient, state the sender reported, its response) of every recorded conflict."""
        with self._engine.connect() as conn:
            return list(conn.execute(
                select(deliveries.c.release, deliveries.c.recipient, delivery_conflicts.c.state, delivery_conflicts.c.response)
                .select_from(delivery_conflicts.join(deliveries, deliveries.c.id == delivery_conflicts.c.delivery_id))
                .where(*_scope(release, channel)).order_by(delivery_conflicts.c.id)
            ).tuples())

    def responses(self, *, release: str, channel: str) -> dict[str, str]:
        """Recipient -> the last answer recorded for each row of (release, channel) (a post's URL)."""
        with self._engine.connect() as conn:
            return dict(conn.execute(
                select(deliveries.c.recipient, deliveries.c.response).where(*_scope(release, channel))
            ).tuples().all())

    def states(self, *, release: str, channel: str) -> dict[str, str]:
        """Recipient -> state of every row of (release, channel)."""
        with self._engine.connect() as conn:
            return dict(conn.execute(
                select(deliveries.c.recipient, deliveries.c.state).where(*_scope(release, channel))
            ).tuples().all())

    def channels(self, *, release: str) -> list[str]:
        """Channels with a plan for ``release``."""
        with self._engine.connect() as conn:
            return list(conn.execute(select(plans.c.channel).where(plans.c.release == release).order_by(plans.c.channel)).scalars())



def _scope(release: str | None, channel: str | None) -> list:
    where = []
    if release is not None:
        where.append(deliveries.c.release == release)
    if channel is not None:
        where.append(deliveries.c.channel.startswith(channel) if channel.endswith(":") else deliveries.c.channel == channel)
    return where


def _unresolved(now: datetime):
    """Ambiguous rows: marked so after a lost answer, or left ``sending`` by a sender whose lease ran out."""
    return or_(
        deliveries.c.state == "ambiguous",
        and_(deliveries.c.state == "sending", or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now)),
    )
