"""The ledger's read side: what was sent where, in counts and rows, for reports and for the channels that look back.

Nothing here writes. :class:`~pressroom.ledger.Ledger` (the write side: plan, claim, advance)
is a :class:`Reports`, so every caller reads through the one object it already holds.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from sqlalchemy import and_, case, exists, func, literal, or_, select

from pressroom.db import (
    complaints, deliveries, delivery_conflicts, delivery_history, engine_for, engine_for_url, journalists, plans, subscribers,
)
from pressroom.settings import Settings

__all__ = ["LABELS", "MEANING", "DeliveryReport", "Event", "Group", "Reports", "Row", "Sender", "sender_name"]


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
            + (f", expired {self._n('expired')} (the server was unavailable too long)" if self._n("expired") else "")
            + (f", in flight {self.in_flight}" if self.in_flight else "")
            + (f", in digest {self.in_digest}" if self.in_digest else "")
            + (f", conflicts {self.conflicts}" if self.conflicts else "")
            + (f"; stopped: {self.error}" if self.error else "")
        )

    def as_rows(self) -> list[dict[str, str | int]]:
        """Rows for a table (Prefect table artifact, CLI)."""
        labels = [("sent", "sent"), ("deferred", "deferred"), ("failed", "failed (bounced)"),
                  ("suppressed", "suppressed"), ("ambiguous", "ambiguous"), ("in flight", "in flight"),
                  ("planned", "pending"), ("digest", "in digest"), ("expired", "expired (server unavailable)")]
        rows: list[dict[str, str | int]] = [{"state": label, "count": self._n(state)} for state, label in labels]
        if self.conflicts:
            rows.append({"state": "conflicts", "count": self.conflicts})
        return rows


# What an operator reads for each state of a report, in this order. The ledger's own states are
# finer (planned and claimed are both "pending") or coarser (a ``sending`` row is "in flight" while
# its sender holds the lease, "ambiguous" once the lease ran out).
MEANING = {
    "sent": "accepted by the server (a post: published)",
    "pending": "waiting for the next run",
    "in flight": "held by a live sender",
    "sender gone": "in flight, but its sender is no longer running",
    "deferred": "waiting to be tried again: the server asked to wait, or could not be reached",
    "ambiguous": "the server may have it",
    "expired": "given up: the server stayed unreachable for as long as [email] give_up_after allows",
    "failed": "refused, with the server's answer",
    "suppressed": "not sent: unsubscribed, bounced, complained or erased before it went out",
    "in digest": "goes out in a weekly digest",
}
LABELS = tuple(MEANING)


@dataclass(frozen=True)
class Sender:
    """The process that holds a row: read from its ``claimed_by`` name (see :func:`sender_name`)."""

    host: str
    pid: int

    @property
    def gone(self) -> bool:
        """Whether it is known to have stopped: only a process on this host can be looked at (a pid
        the system gave to another process since reads as alive, which errs on the safe side)."""
        if self.host != _HOST:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, under another user
            return False
        return False


@dataclass(frozen=True)
class Row:
    """One delivery as an operator reads it; ``state`` is one of :data:`LABELS`."""

    release: str
    channel: str
    recipient: str
    language: str  # the reader's, "" when the row names none (a social account, an erased reader)
    state: str
    attempts: int
    response: str
    updated_at: datetime
    next_attempt_at: datetime | None
    lease_until: datetime | None
    sender: Sender | None
    sending: bool  # a held row whose message may be on the wire (not only claimed)

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until its lease runs out (0 when it has)."""
        if self.lease_until is None:
            return 0
        return max(0, math.ceil((self.lease_until - now).total_seconds()))


@dataclass(frozen=True)
class Group:
    """The counts of one (release, channel, reader language): channels are never added together."""

    release: str
    channel: str
    language: str
    counts: dict[str, int]


@dataclass(frozen=True)
class Event:
    """Something that changed a delivery's fate after it first settled, kept after the counts settle."""

    at: datetime
    release: str
    channel: str
    recipient: str
    what: str


def sender_name() -> str:
    """A sender's name in the ledger (``claimed_by``): its process and host, so a report can say who
    holds a row and whether it still runs, plus a random part that makes it unique."""
    return f"{os.getpid()}@{_HOST}#{uuid.uuid4().hex[:16]}"


def _sender_of(name: str | None) -> Sender | None:
    match = _SENDER.fullmatch(name or "")
    return Sender(host=match["host"], pid=int(match["pid"])) if match else None


# 64 characters for the whole name: pid (at most 7 digits), host, 16 random hex digits.
_HOST = socket.gethostname()[:38]
_SENDER = re.compile(r"(?P<pid>\d+)@(?P<host>.*)#[0-9a-f]{16}")


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
                .where(*where, deliveries.c.state.in_(("failed", "suppressed", "deferred", "ambiguous", "sending", "expired")))
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

    # ----------------------------------------------------------------- what an operator reads

    def overview(self, *, release: str | None = None, channel: str | None = None,
                 now: datetime | None = None) -> list[Group]:
        """Counts per state (:data:`LABELS`) for each (release, channel, reader language).

        A row enqueued on its own (a subscription email, a note to staff: no plan, no subscriber) has
        a key of its own for ``release``: unless ``release`` names one, those are counted per
        channel, as one group with release ``""``, not one group per email.
        """
        now = now or datetime.now(UTC)
        label, language = _label(now), _LANGUAGE
        alone = and_(plans.c.release.is_(None), deliveries.c.subscriber_id.is_(None))
        key = deliveries.c.release if release is not None else case((alone, literal("")), else_=deliveries.c.release)
        planned = _WITH_LANGUAGE.outerjoin(
            plans, and_(plans.c.release == deliveries.c.release, plans.c.channel == deliveries.c.channel)
        )
        groups: dict[tuple[str, str, str], dict[str, int]] = {}
        with self._engine.connect() as conn:
            counted = conn.execute(
                select(key, deliveries.c.channel, language, label, deliveries.c.claimed_by, func.count())
                .select_from(planned).where(*_scope(release, channel))
                .group_by(key, deliveries.c.channel, language, label, deliveries.c.claimed_by)
            ).tuples()
            for slug, chan, lang, state, holder, count in counted:
                state = _refine(state, _sender_of(holder))
                counts = groups.setdefault((slug, chan, lang), {})
                counts[state] = counts.get(state, 0) + int(count)
        return [Group(release=slug, channel=chan, language=lang, counts=counts)
                for (slug, chan, lang), counts in sorted(groups.items(), key=lambda item: (not item[0][0], item[0]))]

    def rows(self, *, release: str | None = None, channel: str | None = None, state: str | None = None,
             address: str | None = None, now: datetime | None = None, limit: int | None = None) -> Iterator[Row]:
        """Every delivery of the scope, oldest first: ``state`` one of :data:`LABELS`; ``address`` a
        normalised address (an erased one is stored only as a keyed hash, so it finds nothing)."""
        label = _label(now or datetime.now(UTC))
        where = _scope(release, channel)
        if address is not None:
            where.append(deliveries.c.recipient == address)
        # Whether a held row's sender is gone is known only in Python: those are filtered (and limited) here.
        held = state in ("in flight", "sender gone")
        if state is not None:
            where.append(label == ("in flight" if held else state))
        query = (
            select(deliveries.c.release, deliveries.c.channel, deliveries.c.recipient, _LANGUAGE, label,
                   deliveries.c.attempts, deliveries.c.response, deliveries.c.updated_at, deliveries.c.next_attempt_at,
                   deliveries.c.lease_until, deliveries.c.claimed_by, deliveries.c.state)
            .select_from(_WITH_LANGUAGE).where(*where).order_by(deliveries.c.id)
            .limit(None if held else limit)
        )
        with self._engine.connect() as conn:
            found = (_row(r) for r in conn.execution_options(yield_per=1000).execute(query).tuples())
            yield from itertools.islice((row for row in found if state is None or row.state == state), limit)

    def history(self, *, release: str | None = None, channel: str | None = None, limit: int = 50) -> list[Event]:
        """The last ``limit`` steps that changed a delivery's fate after it first settled: resends on the
        operator's word, look-ups after a crash, and conflicts (a sender's answer for a row it no longer held)."""
        where = _scope(release, channel)
        with self._engine.connect() as conn:
            steps = conn.execute(
                select(delivery_history.c.at, deliveries.c.release, deliveries.c.channel, deliveries.c.recipient,
                       delivery_history.c.event, delivery_history.c.state, delivery_history.c.response)
                .select_from(delivery_history.join(deliveries, deliveries.c.id == delivery_history.c.delivery_id))
                .where(*where).order_by(delivery_history.c.id.desc()).limit(limit)
            ).tuples().all()
            late = conn.execute(
                select(delivery_conflicts.c.at, deliveries.c.release, deliveries.c.channel, deliveries.c.recipient,
                       delivery_conflicts.c.state, delivery_conflicts.c.response)
                .select_from(delivery_conflicts.join(deliveries, deliveries.c.id == delivery_conflicts.c.delivery_id))
                .where(*where).order_by(delivery_conflicts.c.id.desc()).limit(limit)
            ).tuples().all()
        # Read newest first (the limit keeps the latest), told oldest first.
        events = [Event(at=at, release=slug, channel=chan, recipient=rcpt, what=_step(event, state, answer))
                  for at, slug, chan, rcpt, event, state, answer in reversed(steps)]
        events += [Event(at=at, release=slug, channel=chan, recipient=rcpt, what=_conflict(state, answer))
                   for at, slug, chan, rcpt, state, answer in reversed(late)]
        return sorted(events, key=lambda e: e.at)[-limit:]

    def resends_arrived(self, *, last: int = 100) -> tuple[int, int]:
        """(how many had arrived, of the last ``last`` ambiguous rows resent on the operator's word).

        Arrived: its first sender's answer came after all, saying sent (kept as a conflict). A first
        copy whose answer never came is not counted, so this is the least that arrived twice.
        """
        with self._engine.connect() as conn:
            recent = (
                select(delivery_history.c.delivery_id).where(delivery_history.c.event == "resent")
                .order_by(delivery_history.c.id.desc()).limit(last).subquery()
            )
            arrived = exists().where(delivery_conflicts.c.delivery_id == recent.c.delivery_id, delivery_conflicts.c.state == "sent")
            resent, had = conn.execute(
                select(func.count(), func.coalesce(func.sum(case((arrived, 1), else_=0)), 0)).select_from(recent)
            ).one()
        return int(had), int(resent)


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


def _label(now: datetime):
    """A row's state as :data:`LABELS` names it, in SQL; a held row is "in flight" until :func:`_refine`."""
    live = and_(deliveries.c.lease_until.is_not(None), deliveries.c.lease_until > now)
    return case(
        (and_(deliveries.c.state.in_(("claimed", "sending")), live), literal("in flight")),
        (deliveries.c.state == "sending", literal("ambiguous")),
        (deliveries.c.state.in_(("planned", "claimed")), literal("pending")),
        (deliveries.c.state == "digest", literal("in digest")),
        else_=deliveries.c.state,
    )


def _row(r: tuple) -> Row:
    sender = _sender_of(r[10])
    return Row(release=r[0], channel=r[1], recipient=r[2], language=r[3], state=_refine(r[4], sender), attempts=r[5],
               response=r[6], updated_at=r[7], next_attempt_at=r[8], lease_until=r[9], sender=sender,
               sending=r[11] == "sending")


def _refine(label: str, sender: Sender | None) -> str:
    return "sender gone" if label == "in flight" and sender is not None and sender.gone else label


# The reader's language: a subscriber's, else (the media list's rows name no subscriber) a journalist's.
_WITH_LANGUAGE = deliveries.outerjoin(subscribers, subscribers.c.id == deliveries.c.subscriber_id).outerjoin(
    journalists, and_(deliveries.c.subscriber_id.is_(None), journalists.c.address == deliveries.c.recipient)
)
_LANGUAGE = func.coalesce(subscribers.c.language, journalists.c.language, literal(""))


def _step(event: str, state: str, answer: str) -> str:
    was = f"it was {state}" + (f" ({answer})" if answer else "")
    if event == "resent":
        return f"resent on the operator's word; {was}"
    if event == "asked":
        return f"the network was asked whether it had the post before posting again; {was}"
    return f"queued again on the operator's word; {was}"


def _conflict(state: str, answer: str) -> str:
    said = f"its earlier sender answered {state} after it had lost the row" + (f" ({answer})" if answer else "")
    return said + ("; so the first copy had arrived" if state == "sent" else "")
