"""The ledger: the one record of every email and post, and the only place exactly-once is decided.

One row per (release, channel, recipient). ``channel`` and ``recipient`` are plain strings
(``email`` + an address; ``social:mastodon:default`` + an account), so every channel shares
these rules:

    planned ──claim──▶ claimed ──advance (begin)──▶ sending ──advance (outcome)──▶ sent | deferred | failed | ambiguous | expired
       ▲                  │ (lease expired: claimable again)  │                     │
       │                  └──▶ suppressed (unsubscribed or    │ (sender died: its    │
       │                       suppressed before it went out) │  lease ran out)      │
       └──────── deferred, when due ◀─────────────────────────┴── ambiguous ◀────────┘
                 retry_ambiguous (the operator's word; only rows whose sender is gone)
                 retry (the operator's word: failed or expired rows, sent again from scratch)

- **Plan once.** The audience of a (release, channel) is written in the same transaction as
  its ``plans`` row, whose primary key makes a second plan (a rerun, a concurrent worker) a
  no-op.
- **Claim.** A worker takes a batch of due rows under a lease (PostgreSQL: ``FOR UPDATE SKIP
  LOCKED``; SQLite: a ``BEGIN IMMEDIATE`` transaction). A claim that is never used (a crash
  before sending) expires and the rows are claimed again; that is safe because nothing was
  sent yet.
- **Sending only while in flight.** :meth:`Ledger.advance` is one transaction that records the
  outcomes of the worker's last window and moves its next small window to ``sending``, only
  rows this worker still holds whose subscriber is still confirmed and not suppressed (an
  unsubscribe wins up to that commit). So at any instant a worker has at most its in-flight
  window in ``sending``, and a crash leaves no more than that ambiguous.
- **Ambiguous.** A row whose message went out without a readable answer (a timeout after the
  final dot) is ``ambiguous``; so is a ``sending`` row whose sender's lease ran out (it died).
  Neither is ever resent automatically: only :meth:`Ledger.retry_ambiguous` on the operator's
  word (``pressroom deliveries retry --ambiguous``), and it never touches a live sender's rows.
  A channel that can ask the far end (a social network) resolves its own with
  :meth:`Ledger.requeue_dead`.
- **Attempts are the recipient's.** An answer about the recipient (a 4xx to RCPT TO or to the
  data) spends one of its ``max_attempts``; an answer about the server (down, refusing the
  session, a rate limit: an :class:`Outcome` with ``spent=False``) spends none. Such a row waits
  (``waiting_since``) and, past ``give_up_after``, is ``expired``: never said to have bounced.
- **Clocks.** Every ``now`` given to claim, advance, renew and the retries is the wall clock,
  read at that write: leases and retry times are compared with the clock of the operator's retry
  and of other senders. The run's ``now`` (``--now``) decides what is planned, never when a
  lease ends.
- **Conflicts.** An outcome for a row the worker no longer holds is never applied and never
  dropped: it is kept in ``delivery_conflicts`` and reported.
- **Digest.** A weekly digest is a row whose ``release`` is the digest id; each release it
  carries gets a row in state ``digest`` for the same recipient, so per-release and digest
  sends share the uniqueness rule: a subscriber gets each release once, whichever cadence.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, bindparam, case, column, exists, func, literal, or_, select, type_coerce, update, values

from pressroom.audience import eligible
from pressroom.db import (
    complaints, deliveries, delivery_conflicts, delivery_history, dialect_insert, driver_value, plans, prepared, publications,
    queue_deliveries, subscribers, suppressions,
)
from pressroom.ledger.reports import DeliveryReport, Reports, _scope, _unresolved, sender_name

if TYPE_CHECKING:
    from pressroom.releases import Release

__all__ = ["Delivery", "DeliveryReport", "Ledger", "Outcome", "RETRYABLE", "STATES", "sender_name"]

STATES = ("planned", "claimed", "sending", "sent", "deferred", "failed", "suppressed", "ambiguous", "expired", "digest")
FINAL = ("sent", "failed", "suppressed", "ambiguous")
#: What an operator may send again on purpose (``pressroom deliveries retry --failed | --expired``).
RETRYABLE = ("failed", "expired")
DUE = ("planned", "claimed", "deferred")


@dataclass(frozen=True)
class Delivery:
    """A claimed row: who gets what, and how often it was tried before."""

    id: int
    release: str
    channel: str
    recipient: str
    subscriber_id: int | None
    name: str
    language: str | None
    attempts: int
    payload: str | None = None
    waiting_since: datetime | None = None  # since when the server has been unavailable for it
    # When it was last handed to the far end (None: never). Kept through an operator's retry, which
    # resets the attempts: whatever was handed over may have arrived.
    sending_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one row this worker holds. ``state``: sent, deferred, failed or ambiguous.

    ``spent=False`` on a deferral: the answer was about the server, not the recipient (an outage,
    a rate limit), so it costs no attempt; the row waits, and expires after ``give_up_after``.
    """

    id: int
    state: str
    response: str
    retry_at: datetime | None = None
    spent: bool = True


# The statements of one window's commit, built once (the outcome statements once per number of rows,
# at most _ROWS): constructing them per call cost more than running them.
_NOW = bindparam("b_now", type_=deliveries.c.updated_at.type)
# A row this worker still holds: an outcome is applied only to it, and the statement that applies it
# says which it applied (RETURNING), so no read (and no row lock of its own) comes before it.
_HELD = and_(deliveries.c.claimed_by == bindparam("b_worker"), deliveries.c.state.in_(("claimed", "sending")))


def _outcome_rows(count: int, names: tuple[str, ...]) -> Any:
    """The outcomes of one commit as a table ``v`` of ``count`` rows: id, then ``names``, each bound per row
    (``b_id_<n>``, ``b_<name>_<n>``); one statement applies them all."""
    types = {"retry": deliveries.c.next_attempt_at.type, "id": deliveries.c.id.type}
    columns = [column(name, types.get(name, String())) for name in names]
    rows = [tuple(bindparam(f"b_{name}_{n}", type_=types.get(name)) for name in names) for n in range(count)]
    return values(*columns, name="v").data(rows).cte("v")


_OUT_OF_ATTEMPTS = deliveries.c.attempts >= bindparam("b_max")
_WAITED_SINCE = func.coalesce(deliveries.c.waiting_since, _NOW)
_WAITED_TOO_LONG = bindparam("b_give_up", type_=deliveries.c.waiting_since.type) >= _WAITED_SINCE
# Each kind of outcome: the columns of its table ``v`` (after the id, in the order :func:`_applying` gives
# them), and what it sets besides the response and the end of the claim, which all of them set.
_OUTCOMES: dict[str, tuple[tuple[str, ...], Callable[[Any], dict[str, Any]]]] = {
    "finish": (("state", "response"), lambda v: {"state": v.c.state, "finished_at": _NOW}),
    "defer": (("response", "retry"), lambda v: {
        "state": case((_OUT_OF_ATTEMPTS, "failed"), else_="deferred"),
        "next_attempt_at": v.c.retry,
        "finished_at": case((_OUT_OF_ATTEMPTS, _NOW), else_=None),
        "waiting_since": None,  # the server answered about the recipient: whatever outage there was is over
    }),
    "wait": (("response", "retry"), lambda v: {
        "state": case((_WAITED_TOO_LONG, "expired"), else_="deferred"),
        # Begun rows were counted an attempt when they went sending; the server's trouble gives it back.
        "attempts": case((deliveries.c.state == "sending", deliveries.c.attempts - 1), else_=deliveries.c.attempts),
        "next_attempt_at": v.c.retry,
        "waiting_since": _WAITED_SINCE,
        "finished_at": case((_WAITED_TOO_LONG, _NOW), else_=None),
    }),
}


@functools.cache
def _outcome_statement(kind: str, count: int) -> Any:
    """The statement applying ``count`` outcomes of ``kind`` to the rows the worker still holds; it returns their ids."""
    names, sets = _OUTCOMES[kind]
    v = _outcome_rows(count, ("id", *names))
    return (
        update(deliveries)
        .where(deliveries.c.id == v.c.id, _HELD)
        .values(response=v.c.response, updated_at=_NOW, claimed_by=None, lease_until=None, **sets(v))
        .returning(deliveries.c.id)
    )


_ROWS = 64  # outcomes per statement: a window's commit has fewer; a batch that finds the server down, more
_MINE = and_(deliveries.c.id.in_(bindparam("b_ids", expanding=True)), deliveries.c.state == "claimed",
             deliveries.c.claimed_by == bindparam("b_worker"))
_STILL_WANTED = and_(
    or_(
        deliveries.c.subscriber_id.is_(None),
        exists().where(subscribers.c.id == deliveries.c.subscriber_id, subscribers.c.status == "confirmed"),
    ),
    # An unsubscribe holds back newsletters only: the goodbye email, or a confirmation the reader
    # asked for to come back, still goes. A bounce or a complaint holds back everything.
    ~exists().where(suppressions.c.address == deliveries.c.recipient,
                    or_(deliveries.c.subscriber_id.is_not(None), suppressions.c.reason != "unsubscribed")),
)
_BEGIN = (
    update(deliveries)
    .where(_MINE, _STILL_WANTED)
    .values(state="sending", sending_at=_NOW, attempts=deliveries.c.attempts + 1,
            lease_until=bindparam("b_lease", type_=deliveries.c.lease_until.type), updated_at=_NOW)
    .returning(deliveries.c.id)
)
_OF_SUBSCRIBER = subscribers.c.id == deliveries.c.subscriber_id
# What a claim returns of each row it takes, the reader's name and language included: one
# statement claims and reads (RETURNING takes no join, so these are scalar subqueries).
_CLAIMED = (
    deliveries.c.id, deliveries.c.release, deliveries.c.channel, deliveries.c.recipient, deliveries.c.subscriber_id,
    deliveries.c.attempts, deliveries.c.payload, deliveries.c.waiting_since, deliveries.c.sending_at,
    select(subscribers.c.name).where(_OF_SUBSCRIBER).scalar_subquery(),
    select(subscribers.c.language).where(_OF_SUBSCRIBER).scalar_subquery(),
)
_REMEMBER_TEXT = (
    update(publications)
    .where(publications.c.slug == bindparam("p_slug"))
    .values(text_digest=bindparam("p_digest"), corrections=bindparam("p_corrections"))
)
_HOLD_BACK = (
    update(deliveries)
    .where(_MINE)
    .values(state="suppressed", response="not sent: unsubscribed or suppressed before sending",
            finished_at=_NOW, updated_at=_NOW, claimed_by=None, lease_until=None)
)


class Ledger(Reports):
    """Deliveries in the Pressroom database: the write side, plus every read of :class:`Reports`. Safe to share between threads."""

    # ----------------------------------------------------------------- publication

    def record_public(self, *, releases: Iterable[Release], now: datetime) -> list[str]:
        """Record when each release was first seen public; return the slugs public for the first time."""
        rows = [
            {"slug": r.slug, "release_date": r.date, "first_public_at": now} for r in releases if r.is_public(now)
        ]
        if not rows:
            return []
        with self._engine.begin() as conn:
            known = set(
                conn.execute(select(publications.c.slug).where(publications.c.slug.in_([r["slug"] for r in rows]))).scalars()
            )
            fresh = [row for row in rows if row["slug"] not in known]
            if fresh:
                conn.execute(dialect_insert(conn, publications).on_conflict_do_nothing(), fresh)
        return [row["slug"] for row in fresh]

    def first_published(self) -> dict[str, datetime]:
        """Slug -> the instant Pressroom first saw the release public."""
        with self._engine.connect() as conn:
            return dict(conn.execute(select(publications.c.slug, publications.c.first_public_at)).tuples().all())

    # ----------------------------------------------------------------- planning

    def is_planned(self, *, release: str, channel: str) -> bool:
        """Whether the audience of (release, channel) has been planned."""
        with self._engine.connect() as conn:
            return conn.execute(
                select(plans.c.release).where(plans.c.release == release, plans.c.channel == channel)
            ).first() is not None

    def plan(self, *, release: str, channel: str, recipients: Iterable[str], now: datetime) -> int | None:
        """Plan explicit recipients (social accounts, test sends). ``None`` if already planned."""
        with self._engine.begin() as conn:
            if not self._claim_plan(conn, release, channel, now):
                return None
            rows = [
                {"release": release, "channel": channel, "recipient": r, "state": "planned", "planned_at": now, "updated_at": now}
                for r in dict.fromkeys(recipients)
            ]
            if rows:
                conn.execute(dialect_insert(conn, deliveries).on_conflict_do_nothing(), rows)
            return self._count_plan(conn, release, channel)

    def plan_audience(self, *, release: str, channel: str, tags: Sequence[str], cadence: str, now: datetime) -> int | None:
        """Plan every eligible subscriber (confirmed, cadence, topics, not suppressed) in one statement.

        Streams inside the database (INSERT ... SELECT), so a million subscribers never pass
        through Python. Returns the number of rows planned, or ``None`` if already planned.
        """
        with self._engine.begin() as conn:
            if not self._claim_plan(conn, release, channel, now):
                return None
            self._insert_audience(conn, release=release, channel=channel, tags=tags, cadence=cadence, now=now)
            return self._count_plan(conn, release, channel)

    def plan_digest(self, *, digest: str, items: Sequence[tuple[str, Sequence[str]]], now: datetime, channel: str = "email") -> int | None:
        """Plan a weekly digest: ``items`` are (release slug, tag slugs). ``None`` if already planned.

        Weekly subscribers get every matching release they have not had yet (in any cadence);
        a subscriber with nothing new gets no digest.
        """
        with self._engine.begin() as conn:
            if not self._claim_plan(conn, digest, channel, now):
                return None
            for slug, tags in items:
                self._insert_audience(conn, release=slug, channel=channel, tags=tags, cadence="weekly", now=now, bundle=digest)
            carriers = (
                select(
                    literal(digest), literal(channel), deliveries.c.recipient, func.min(deliveries.c.subscriber_id),
                    literal("planned"), literal(now, deliveries.c.planned_at.type), literal(now, deliveries.c.updated_at.type),
                )
                .where(deliveries.c.bundle == digest, deliveries.c.state == "digest")
                .group_by(deliveries.c.recipient)
            )
            conn.execute(
                deliveries.insert().from_select(
                    ["release", "channel", "recipient", "subscriber_id", "state", "planned_at", "updated_at"], carriers
                )
            )
            return self._count_plan(conn, digest, channel)

    def digest_contents(self, *, digest: str, recipients: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Recipient -> the release slugs their digest carries."""
        contents: dict[str, list[str]] = {}
        with self._engine.connect() as conn:
            for recipient, slug in conn.execute(
                select(deliveries.c.recipient, deliveries.c.release)
                .where(deliveries.c.bundle == digest, deliveries.c.recipient.in_(list(recipients)))
                .order_by(deliveries.c.recipient, deliveries.c.release)
            ):
                contents.setdefault(recipient, []).append(slug)
        return {key: tuple(value) for key, value in contents.items()}

    # ----------------------------------------------------------------- sending

    def enqueue(self, *, release: str, channel: str, recipient: str, subscriber_id: int | None, payload: str,
                now: datetime) -> bool:
        """One delivery that carries what it renders from (a subscription email); False if it exists."""
        with self._engine.begin() as conn:
            return queue_deliveries(conn, [{"release": release, "channel": channel, "recipient": recipient, "subscriber_id": subscriber_id,
                                            "payload": payload, "planned_at": now, "updated_at": now}]) == 1

    def claim(
        self, *, release: str | None, channel: str, limit: int, now: datetime, worker: str | None = None,
        run_id: str | None = None, lease: timedelta = timedelta(seconds=60),
    ) -> tuple[str, list[Delivery]]:
        """Take up to ``limit`` due rows for this worker; returns (worker token, claimed rows).

        Due: planned; deferred whose retry time has come; claimed by a worker whose lease ran out.
        ``release=None`` takes due rows of every release of ``channel`` (subscription emails).
        """
        token = worker or sender_name()
        due = or_(
            deliveries.c.state == "planned",
            and_(deliveries.c.state == "deferred", deliveries.c.next_attempt_at <= now),
            and_(deliveries.c.state == "claimed", deliveries.c.lease_until <= now),
        )
        where = [deliveries.c.channel == channel, due]
        if release is not None:
            where.append(deliveries.c.release == release)
        pick = select(deliveries.c.id).where(*where).order_by(deliveries.c.id).limit(limit).with_for_update(skip_locked=True)
        with self._engine.begin() as conn:
            rows = conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(pick.scalar_subquery()))
                .values(state="claimed", claimed_by=token, run_id=run_id or token, lease_until=now + lease, updated_at=now)
                .returning(*_CLAIMED)
            ).all()
        rows.sort(key=lambda r: r[0])  # RETURNING keeps no order
        return token, [
            Delivery(id=i, release=slug, channel=on, recipient=to, subscriber_id=sid, name=name or "", language=language,
                     attempts=attempts, payload=payload, waiting_since=waiting_since, sending_at=sending_at)
            for i, slug, on, to, sid, attempts, payload, waiting_since, sending_at, name, language in rows
        ]

    def advance(
        self, *, worker: str, outcomes: Sequence[Outcome], begin: Sequence[int], now: datetime,
        lease: timedelta = timedelta(seconds=60), max_attempts: int = 5, give_up_after: timedelta = timedelta(hours=72),
    ) -> list[int]:
        """One transaction: record ``outcomes`` of rows this worker holds, then mark ``begin`` ``sending``.

        Returns the ids of ``begin`` that may go out now. A row of ``begin`` whose subscriber is
        no longer confirmed, or whose address was suppressed since planning, becomes
        ``suppressed`` instead. An outcome for a row the worker no longer holds (an operator
        requeued it, another worker took it over) is kept as a conflict, never applied.
        A deferral past ``max_attempts`` becomes ``failed``; one that spent no attempt (the server
        was unavailable) becomes ``expired`` once the row has waited ``give_up_after``.
        """
        if not outcomes and not begin:
            return []
        params = {"b_worker": worker, "b_now": now}
        with self._engine.begin() as conn:
            if outcomes:
                _record(conn, outcomes, params=params, max_attempts=max_attempts, give_up_after=give_up_after)
            if not begin:
                return []
            ok = prepared(conn, _BEGIN, {"b_worker": worker, "b_ids": list(begin), "b_now": _at(conn, now),
                                         "b_lease": _at(conn, now + lease)}).scalars().all()
            if len(ok) < len(begin):
                conn.execute(_HOLD_BACK, {**params, "b_ids": list(begin)})
        return sorted(ok)

    def renew(self, *, worker: str, now: datetime, lease: timedelta) -> int:
        """Extend the lease of every row this worker holds: it is alive, its rows are not ambiguous."""
        with self._engine.begin() as conn:
            return int(conn.execute(
                update(deliveries)
                .where(deliveries.c.claimed_by == worker, deliveries.c.state.in_(("claimed", "sending")))
                .values(lease_until=now + lease)
            ).rowcount)

    def release_claims(self, *, worker: str, now: datetime) -> int:
        """Give back rows this worker claimed but never began (it stops early): due again at once."""
        with self._engine.begin() as conn:
            return int(conn.execute(
                update(deliveries)
                .where(deliveries.c.claimed_by == worker, deliveries.c.state == "claimed")
                .values(state="planned", claimed_by=None, lease_until=None, updated_at=now)
            ).rowcount)

    def outstanding(self, *, release: str | None, channel: str, now: datetime) -> tuple[int, datetime | None]:
        """(rows this run could still send, when the next of them becomes due; ``None``: some are due now).

        Planned rows, deferred ones and claims whose lease ran out. Rows a live worker holds are
        its own to finish (or, if it dies, a later run's), so nobody waits for them.
        """
        where = [deliveries.c.channel == channel]
        if release is not None:
            where.append(deliveries.c.release == release)
        due_now = or_(
            deliveries.c.state == "planned",
            and_(deliveries.c.state == "claimed", deliveries.c.lease_until <= now),
            and_(deliveries.c.state == "deferred", deliveries.c.next_attempt_at <= now),
        )
        later = and_(deliveries.c.state == "deferred", deliveries.c.next_attempt_at > now)
        with self._engine.connect() as conn:
            ready = conn.execute(select(func.count()).where(*where, due_now)).scalar_one()
            waiting, soonest = conn.execute(
                select(func.count(), type_coerce(func.min(deliveries.c.next_attempt_at), deliveries.c.next_attempt_at.type))
                .where(*where, later)
            ).one()
        return int(ready) + int(waiting), (None if ready else soonest)

    def mark_bounced(self, *, release: str, recipient: str, response: str, now: datetime) -> bool:
        """A hard bounce arrived after the 250: the sent row becomes ``failed`` with the bounce's diagnostic."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.release == release, deliveries.c.recipient == recipient, deliveries.c.state == "sent")
                .values(state="failed", response=response[:1000], updated_at=now)
            )
            return result.rowcount > 0

    def record_complaint(self, *, release: str, recipient: str, feedback_type: str, reporter: str,
                         now: datetime) -> tuple[str | None, bool]:
        """A spam complaint about the email of ``release`` (its Message-ID key) to ``recipient``.

        Counts it once against that delivery (the complaint rate of its release; a second report of
        the same email counts nothing). Without a row
        for that key, the newest email the address was sent is the one complained about. Returns
        (the release it counted for, whether it was new); (None, False), changing nothing, when
        Pressroom never sent this address anything.
        """
        with self._engine.begin() as conn:
            row = conn.execute(
                select(deliveries.c.id, deliveries.c.release)
                .where(deliveries.c.recipient == recipient, deliveries.c.state.in_(("sent", "failed")))
                .order_by((deliveries.c.release == release).desc(), deliveries.c.id.desc()).limit(1)
            ).first()
            if row is None:
                return None, False
            new = conn.execute(
                dialect_insert(conn, complaints)
                .values(delivery_id=row.id, feedback_type=feedback_type[:32], reporter=reporter[:200], at=now)
                .on_conflict_do_nothing()
                .returning(complaints.c.id)
            ).first() is not None
        return row.release, new

    # ----------------------------------------------------------------- repair

    def retry_ambiguous(self, *, now: datetime, release: str | None = None, channel: str | None = None) -> tuple[int, int]:
        """The operator's word: ambiguous rows go back to ``planned``; returns (requeued, skipped as in flight).

        A ``sending`` row whose sender still holds its lease is in flight, not ambiguous, and is
        left alone: requeuing it would send it twice.
        """
        where = _scope(release, channel)
        with self._engine.begin() as conn:
            _remember(conn, [*where, _unresolved(now)], event="resent", state="ambiguous", now=now)
            requeued = conn.execute(
                update(deliveries).where(*where, _unresolved(now)).values(
                    state="planned", response="resent on the operator's word after an ambiguous send",
                    claimed_by=None, lease_until=None, updated_at=now,
                )
            ).rowcount
            live = conn.execute(
                select(func.count()).where(*where, deliveries.c.state == "sending", deliveries.c.lease_until > now)
            ).scalar_one()
        return int(requeued), int(live)

    def retryable(self, *, states: Sequence[str], release: str | None = None, channel: str | None = None,
                  since: datetime | None = None) -> int:
        """How many rows :meth:`retry` would send again (the operator is told before saying yes)."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(*_retryable(states, release, channel, since))).scalar_one())

    def retry(self, *, states: Sequence[str], now: datetime, release: str | None = None, channel: str | None = None,
              since: datetime | None = None) -> int:
        """The operator's word: ``failed`` or ``expired`` rows (finished since ``since``) are planned again,
        their attempts and wait reset; returns how many. An address suppressed since (a hard bounce)
        is still held back when the row comes up (``suppressed``), so this never reaches it."""
        with self._engine.begin() as conn:
            _remember(conn, _retryable(states, release, channel, since), event="retried", now=now)
            return int(conn.execute(
                update(deliveries).where(*_retryable(states, release, channel, since)).values(
                    state="planned", attempts=0, waiting_since=None, next_attempt_at=None, finished_at=None,
                    claimed_by=None, lease_until=None, updated_at=now,
                    response=func.substr("sent again on the operator's word; before: " + deliveries.c.response, 1, 1000),
                )
            ).rowcount)

    def requeue_dead(self, *, channel: str, now: datetime, release: str | None = None) -> int:
        """For a channel that can ask the far end whether a delivery arrived (a social network):
        its ambiguous rows become due again, with their attempts kept, so the sender looks before it sends."""
        with self._engine.begin() as conn:
            _remember(conn, [*_scope(release, channel), _unresolved(now)], event="asked", state="ambiguous", now=now)
            return int(conn.execute(
                update(deliveries).where(*_scope(release, channel), _unresolved(now)).values(
                    state="deferred", next_attempt_at=now, claimed_by=None, lease_until=None, updated_at=now,
                    response="unknown after a crash or a lost answer: asking the network before posting again",
                )
            ).rowcount)

    def rows_of(self, *, channels: Sequence[str]) -> list[tuple[int, str, str, str, str, str | None]]:
        """(id, release, channel, recipient, state, payload) of every row of ``channels``, oldest first
        (the media list's bookkeeping: who had which embargoed email, for which date)."""
        with self._engine.connect() as conn:
            return list(conn.execute(
                select(deliveries.c.id, deliveries.c.release, deliveries.c.channel, deliveries.c.recipient,
                       deliveries.c.state, deliveries.c.payload)
                .where(deliveries.c.channel.in_(list(channels))).order_by(deliveries.c.id)
            ).tuples())

    # ----------------------------------------------------------------- internals

    @staticmethod
    def _claim_plan(conn, release: str, channel: str, now: datetime) -> bool:
        result = conn.execute(
            dialect_insert(conn, plans)
            .values(release=release, channel=channel, planned_at=now, recipients=0)
            .on_conflict_do_nothing()
            .returning(plans.c.release)
        )
        return result.first() is not None

    @staticmethod
    def _count_plan(conn, release: str, channel: str) -> int:
        count = conn.execute(
            select(func.count()).where(deliveries.c.release == release, deliveries.c.channel == channel,
                                       deliveries.c.state != "digest")
        ).scalar_one()
        conn.execute(update(plans).where(plans.c.release == release, plans.c.channel == channel).values(recipients=count))
        return int(count)

    @staticmethod
    def _insert_audience(conn, *, release: str, channel: str, tags: Sequence[str], cadence: str, now: datetime, bundle: str | None = None) -> None:
        audience = eligible(cadence=cadence, tags=tags).subquery()
        source = select(
            literal(release), literal(channel), audience.c.address, audience.c.id,
            literal(bundle), literal("digest" if bundle else "planned"),
            literal(now, deliveries.c.planned_at.type), literal(now, deliveries.c.updated_at.type),
        ).where(audience.c.id.is_not(None))  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
        conn.execute(
            dialect_insert(conn, deliveries)
            .from_select(["release", "channel", "recipient", "subscriber_id", "bundle", "state", "planned_at", "updated_at"], source)
            .on_conflict_do_nothing()
        )

    # ----------------------------------------------------------------- after publication

    def published_texts(self) -> dict[str, tuple[str | None, int]]:
        """Slug -> (text digest, number of correction notes) of each release when it was last published."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(publications.c.slug, publications.c.text_digest, publications.c.corrections))
            return {slug: (digest, corrections) for slug, digest, corrections in rows.tuples()}

    def remember_texts(self, *, releases: Iterable[Release]) -> None:
        """Record what each (already recorded) public release says now: the next check compares with it.

        Only releases that changed are written: every publish run calls this for the whole archive."""
        known = self.published_texts()
        changed = [
            {"p_slug": release.slug, "p_digest": release.text_digest, "p_corrections": len(release.corrections)}
            for release in releases
            if release.slug in known and known[release.slug] != (release.text_digest, len(release.corrections))
        ]
        if changed:
            with self._engine.begin() as conn:
                conn.execute(_REMEMBER_TEXT, changed)

    def plan_received(self, *, release: str, source: str, channel: str, now: datetime) -> int | None:
        """Plan ``channel`` for everyone ``source`` reached (its ``sent`` rows), with their subscriber ids,
        so a follow-up (a correction, a withdrawal notice) goes to exactly those readers. ``None`` if already planned."""
        with self._engine.begin() as conn:
            if not self._claim_plan(conn, release, channel, now):
                return None
            reached = select(
                literal(release), literal(channel), deliveries.c.recipient, deliveries.c.subscriber_id,
                literal("planned"), literal(now, deliveries.c.planned_at.type), literal(now, deliveries.c.updated_at.type),
            ).where(deliveries.c.release == release, deliveries.c.channel == source, deliveries.c.state == "sent")
            conn.execute(
                dialect_insert(conn, deliveries)
                .from_select(["release", "channel", "recipient", "subscriber_id", "state", "planned_at", "updated_at"], reached)
                .on_conflict_do_nothing()
            )
            return self._count_plan(conn, release, channel)


def _record(conn, outcomes: Sequence[Outcome], *, params: dict, max_attempts: int, give_up_after: timedelta) -> None:
    """Apply the outcomes of rows the worker (``params``) still holds; keep the others as conflicts."""
    worker, now = params["b_worker"], params["b_now"]
    common = {"b_worker": worker, "b_now": _at(conn, now)}
    applied: set[int] = set()
    for kind, rows, extra in _applying(conn, outcomes, now=now, max_attempts=max_attempts, give_up_after=give_up_after):
        for start in range(0, len(rows), _ROWS):
            chunk = rows[start : start + _ROWS]
            statement = _outcome_statement(kind, len(chunk))
            applied.update(prepared(conn, statement, _bound(kind, chunk) | common | extra).scalars())
    lost = [o for o in outcomes if o.id not in applied]
    if lost:
        conn.execute(delivery_conflicts.insert(), [
            {"delivery_id": o.id, "worker": worker, "state": o.state, "response": o.response[:1000], "at": now}
            for o in lost
        ])


def _applying(conn, outcomes: Sequence[Outcome], *, now: datetime, max_attempts: int, give_up_after: timedelta) -> list[tuple]:
    """(kind, its rows, its other values) for each kind of outcome: final; a deferral that spent an
    attempt (counts toward ``max_attempts``); one that spent none (the server was unavailable: it waits
    up to ``give_up_after``)."""
    deferred = [o for o in outcomes if o.state == "deferred"]
    return [
        ("finish", [(o.id, o.state, o.response[:1000]) for o in outcomes if o.state in FINAL], {}),
        ("defer", [(o.id, o.response[:1000], _at(conn, o.retry_at or now)) for o in deferred if o.spent],
         {"b_max": max_attempts}),
        ("wait", [(o.id, o.response[:1000], _at(conn, o.retry_at or now)) for o in deferred if not o.spent],
         {"b_give_up": _at(conn, now - give_up_after)}),
    ]


def _bound(kind: str, rows: Sequence[tuple]) -> dict[str, Any]:
    """The bound values of ``rows`` (one tuple per row, in the order of ``kind``'s table ``v``)."""
    names = ("id", *_OUTCOMES[kind][0])
    return {f"b_{name}_{n}": value for n, row in enumerate(rows) for name, value in zip(names, row)}


def _at(conn, moment: datetime):
    """``moment`` as the driver stores a timestamp of the ledger (for :func:`~pressroom.db.prepared`)."""
    return driver_value(conn, deliveries.c.updated_at.type, moment)


def _remember(conn, where: list, *, event: str, now: datetime, state: str | None = None) -> None:
    """Keep, for every row ``where`` selects, its state (or ``state``, when the ledger's word for it is
    another: a dead ``sending`` row is ambiguous) and answer before ``event`` changes its fate on purpose
    (delivery_history): a resent row that settles as ``sent`` still shows it was resent."""
    conn.execute(delivery_history.insert().from_select(
        ["delivery_id", "event", "state", "response", "at"],
        select(deliveries.c.id, literal(event), deliveries.c.state if state is None else literal(state),
               deliveries.c.response, literal(now, delivery_history.c.at.type)).where(*where),
    ))


def _retryable(states: Sequence[str], release: str | None, channel: str | None, since: datetime | None) -> list:
    unknown = set(states) - set(RETRYABLE)
    if unknown:
        raise ValueError(f"only {' and '.join(RETRYABLE)} rows are sent again on purpose, not {', '.join(sorted(unknown))}")
    where = [*_scope(release, channel), deliveries.c.state.in_(list(states))]
    if since is not None:
        where.append(func.coalesce(deliveries.c.finished_at, deliveries.c.updated_at) >= literal(since, deliveries.c.updated_at.type))
    return where
