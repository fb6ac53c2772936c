"""The ledger: the one record of every email and post, and the only place exactly-once is decided.

One row per (release, channel, recipient). ``channel`` and ``recipient`` are plain strings
(``email`` + an address; ``social:mastodon:default`` + an account), so every channel shares
these rules:

    planned ──claim──▶ claimed ──begin_sending──▶ sending ──▶ sent | deferred | failed | suppressed
       ▲                  │ (lease expired: claimable again)          │
       └──────────────────┴──────────── deferred, when due ◀──────────┘

- **Plan once.** The audience of a (release, channel) is written in the same transaction as
  its ``plans`` row, whose primary key makes a second plan (a rerun, a concurrent worker) a
  no-op.
- **Claim.** A worker takes a batch of due rows under a lease (PostgreSQL: ``FOR UPDATE SKIP
  LOCKED``; SQLite: a ``BEGIN IMMEDIATE`` transaction). A claim that is never used (a crash
  before sending) expires and the rows are claimed again; that is safe because nothing was
  sent yet.
- **Sending before DATA.** ``begin_sending`` moves claimed rows to ``sending`` only if this
  worker still holds them and the subscriber is still confirmed and not suppressed (an
  unsubscribe mid-send wins). A row left ``sending`` by a crash is *ambiguous*: the message may
  or may not have gone out, so it is never resent automatically, only by
  :meth:`Ledger.retry_ambiguous` (``pressroom deliveries retry --ambiguous``).
- **Digest.** A weekly digest is a row whose ``release`` is the digest id; each release it
  carries gets a row in state ``digest`` for the same recipient, so per-release and digest
  sends share the uniqueness rule: a subscriber gets each release once, whichever cadence.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, case, exists, func, literal, or_, select, type_coerce, update

from pressroom.audience import eligible
from pressroom.db import deliveries, dialect_insert, engine_for, engine_for_url, plans, publications, subscribers, suppressions
from pressroom.settings import Settings

if TYPE_CHECKING:
    from pressroom.releases import Release

__all__ = ["Delivery", "DeliveryReport", "Ledger", "Outcome", "STATES"]

STATES = ("planned", "claimed", "sending", "sent", "deferred", "failed", "suppressed", "digest")
FINAL = ("sent", "failed", "suppressed")


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


@dataclass(frozen=True)
class Outcome:
    """What happened to one row in ``sending``. ``state``: sent, deferred, failed or suppressed."""

    id: int
    state: str
    response: str
    retry_at: datetime | None = None


@dataclass
class DeliveryReport:
    """Counts per state for a release/channel (or everything), and the rows that need a look."""

    release: str | None
    channel: str | None
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str, str, str]] = field(default_factory=list)  # release, recipient, state, response
    skipped: str = ""
    sent_now: int | None = None  # sent by the run that made this report (the counts are all-time)
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
        return self._n("sending")

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
            + (f", in digest {self.in_digest}" if self.in_digest else "")
            + (f"; stopped: {self.error}" if self.error else "")
        )

    def as_rows(self) -> list[dict[str, str | int]]:
        """Rows for a table (Prefect table artifact, CLI)."""
        labels = [("sent", "sent"), ("deferred", "deferred"), ("failed", "failed (bounced)"),
                  ("suppressed", "suppressed"), ("sending", "ambiguous"), ("planned", "pending"), ("digest", "in digest")]
        return [{"state": label, "count": self._n(state)} for state, label in labels]


class Ledger:
    """Deliveries in the Pressroom database. Safe to share between threads."""

    def __init__(self, *, url: str) -> None:
        self._engine = engine_for_url(url)

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        """Connect (and migrate) the database named by ``settings.db_url``."""
        engine_for(settings)
        return cls(url=settings.db_url)

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

    def claim(
        self, *, release: str, channel: str, limit: int, now: datetime, worker: str | None = None, lease: timedelta = timedelta(seconds=60)
    ) -> tuple[str, list[Delivery]]:
        """Take up to ``limit`` due rows for this worker; returns (worker token, claimed rows).

        Due: planned; deferred whose retry time has come; claimed by a worker whose lease ran out.
        """
        token = worker or uuid.uuid4().hex
        due = or_(
            deliveries.c.state == "planned",
            and_(deliveries.c.state == "deferred", deliveries.c.next_attempt_at <= now),
            and_(deliveries.c.state == "claimed", deliveries.c.lease_until <= now),
        )
        pick = (
            select(deliveries.c.id)
            .where(deliveries.c.release == release, deliveries.c.channel == channel, due)
            .order_by(deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._engine.begin() as conn:
            ids = conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(pick.scalar_subquery()))
                .values(state="claimed", claimed_by=token, lease_until=now + lease, updated_at=now)
                .returning(deliveries.c.id)
            ).scalars().all()
            if not ids:
                return token, []
            rows = conn.execute(
                select(deliveries.c.id, deliveries.c.release, deliveries.c.channel, deliveries.c.recipient,
                       deliveries.c.subscriber_id, deliveries.c.attempts, subscribers.c.name, subscribers.c.language)
                .select_from(deliveries.outerjoin(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
                .where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.id)
            ).all()
        return token, [
            Delivery(id=r.id, release=r.release, channel=r.channel, recipient=r.recipient, subscriber_id=r.subscriber_id,
                     name=r.name or "", language=r.language, attempts=r.attempts)
            for r in rows
        ]

    def begin_sending(self, *, ids: Sequence[int], worker: str, now: datetime) -> list[int]:
        """Mark claimed rows ``sending`` (call before SMTP DATA); return the ids that may be sent.

        A row is held back, and marked ``suppressed``, when its subscriber is no longer
        confirmed or its address was suppressed since planning. Rows another worker took over
        are left alone.
        """
        if not ids:
            return []
        mine = and_(deliveries.c.id.in_(list(ids)), deliveries.c.state == "claimed", deliveries.c.claimed_by == worker)
        still_wanted = and_(
            or_(
                deliveries.c.subscriber_id.is_(None),
                exists().where(subscribers.c.id == deliveries.c.subscriber_id, subscribers.c.status == "confirmed"),
            ),
            ~exists().where(suppressions.c.address == deliveries.c.recipient),
        )
        with self._engine.begin() as conn:
            ok = conn.execute(
                update(deliveries)
                .where(mine, still_wanted)
                .values(state="sending", sending_at=now, attempts=deliveries.c.attempts + 1, updated_at=now)
                .returning(deliveries.c.id)
            ).scalars().all()
            if len(ok) < len(ids):
                conn.execute(
                    update(deliveries)
                    .where(mine)
                    .values(state="suppressed", response="not sent: unsubscribed or suppressed before sending",
                            finished_at=now, updated_at=now)
                )
        return sorted(ok)

    def finish(self, *, outcomes: Iterable[Outcome], now: datetime, max_attempts: int = 5) -> None:
        """Record outcomes of rows in ``sending``; a deferral past ``max_attempts`` becomes ``failed``."""
        final = [o for o in outcomes]
        if not final:
            return
        with self._engine.begin() as conn:
            done = [{"b_id": o.id, "b_state": o.state, "b_response": o.response[:1000]} for o in final if o.state in FINAL]
            if done:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.state == "sending")
                    .values(state=bindparam("b_state"), response=bindparam("b_response"), finished_at=now,
                            updated_at=now, claimed_by=None, lease_until=None),
                    done,
                )
            later = [
                {"b_id": o.id, "b_response": o.response[:1000], "b_retry": o.retry_at or now}
                for o in final
                if o.state == "deferred"
            ]
            if later:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.state == "sending")
                    .values(
                        state=case((deliveries.c.attempts >= max_attempts, "failed"), else_="deferred"),
                        response=bindparam("b_response"),
                        next_attempt_at=bindparam("b_retry", type_=deliveries.c.next_attempt_at.type),
                        finished_at=case((deliveries.c.attempts >= max_attempts, now), else_=None),
                        updated_at=now, claimed_by=None, lease_until=None,
                    ),
                    later,
                )

    def outstanding(self, *, release: str, channel: str) -> tuple[int, datetime | None]:
        """(rows still to send, the earliest time one of them becomes due), ambiguous rows excluded.

        Due times are the retry times of deferred rows and the lease ends of claimed ones;
        ``None`` when some row is due now (or there is none).
        """
        where = (deliveries.c.release == release, deliveries.c.channel == channel)
        with self._engine.connect() as conn:
            counts = dict(conn.execute(
                select(deliveries.c.state, func.count())
                .where(*where, deliveries.c.state.in_(("planned", "claimed", "deferred")))
                .group_by(deliveries.c.state)
            ).tuples().all())
            due = conn.execute(
                select(type_coerce(func.min(case((deliveries.c.state == "deferred", deliveries.c.next_attempt_at),
                                                 else_=deliveries.c.lease_until)), deliveries.c.lease_until.type))
                .where(*where, deliveries.c.state.in_(("claimed", "deferred")))
            ).scalar_one()
        total = sum(int(v) for v in counts.values())
        if counts.get("planned"):
            due = None
        return total, due

    def mark_bounced(self, *, release: str, recipient: str, response: str, now: datetime) -> bool:
        """A hard bounce arrived after the 250: the sent row becomes ``failed`` with the bounce's diagnostic."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.release == release, deliveries.c.recipient == recipient, deliveries.c.state == "sent")
                .values(state="failed", response=response[:1000], updated_at=now)
            )
            return result.rowcount > 0

    # ----------------------------------------------------------------- reporting and repair

    def report(self, *, release: str | None = None, channel: str | None = None, problems: int = 100) -> DeliveryReport:
        """Counts per state and up to ``problems`` rows that were not sent (with the server's answer)."""
        where = []
        if release is not None:
            where.append(deliveries.c.release == release)
        if channel is not None:
            where.append(deliveries.c.channel.startswith(channel) if channel.endswith(":") else deliveries.c.channel == channel)
        with self._engine.connect() as conn:
            counts = dict(conn.execute(select(deliveries.c.state, func.count()).where(*where).group_by(deliveries.c.state)).tuples().all())
            rows = conn.execute(
                select(deliveries.c.release, deliveries.c.recipient, deliveries.c.state, deliveries.c.response)
                .where(*where, deliveries.c.state.in_(("failed", "suppressed", "deferred", "sending")))
                .order_by(deliveries.c.id)
                .limit(problems)
            ).tuples().all()
        return DeliveryReport(release=release, channel=channel, counts={k: int(v) for k, v in counts.items()}, problems=list(rows))

    def ambiguous(self, *, release: str | None = None, channel: str | None = None) -> list[tuple[str, str, str]]:
        """(release, channel, recipient) of every row left ``sending``: maybe sent, maybe not."""
        with self._engine.connect() as conn:
            return list(conn.execute(
                select(deliveries.c.release, deliveries.c.channel, deliveries.c.recipient)
                .where(*_sending(release, channel)).order_by(deliveries.c.id)
            ).tuples())

    def retry_ambiguous(self, *, now: datetime, release: str | None = None, channel: str | None = None) -> int:
        """The operator's word: put ambiguous rows back to ``planned`` so the next send resends them."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(deliveries).where(*_sending(release, channel)).values(
                    state="planned", response="resent on the operator's word after an ambiguous send",
                    claimed_by=None, lease_until=None, updated_at=now,
                )
            )
            return int(result.rowcount)

    def channels(self, *, release: str) -> list[str]:
        """Channels with a plan for ``release``."""
        with self._engine.connect() as conn:
            return list(conn.execute(select(plans.c.channel).where(plans.c.release == release).order_by(plans.c.channel)).scalars())

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


def _sending(release: str | None, channel: str | None) -> list:
    where = [deliveries.c.state == "sending"]
    if release is not None:
        where.append(deliveries.c.release == release)
    if channel is not None:
        where.append(deliveries.c.channel == channel)
    return where
