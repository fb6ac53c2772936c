"""Subscribers: the store, their topics and cadence, suppressions, consent evidence, CSV import and export.

A subscriber is ``pending`` (asked, not yet confirmed), ``confirmed`` (receives email) or
``unsubscribed``. ``topics`` are tag slugs; none means everything. ``cadence`` is
``per-release`` (an email for each release) or ``weekly`` (the digest). Every change of consent
is appended to the consent chain (:mod:`.consent`). The suppression list holds addresses that
must never be emailed: hard bounces, complaints, unsubscribes, manual blocks; after erasure a
bounce or a complaint stays there as a keyed hash only.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping

from pressroom.audience.addresses import (
    address_hash,
    check_language,
    clean_name,
    normalise_address,
    topic_slugs,
)
from pressroom.audience.consent import ChainReport, append_events, seal_legacy, verify_chain
from pressroom.audience.csvfiles import ImportReport, csv_file, csv_reader
from pressroom.db import (
    READS_ONLY,
    consent_events,
    dialect_insert,
    engine_for,
    engine_for_url,
    subscriber_topics,
    subscribers,
    subscription_requests,
    suppressions,
)
from pressroom.errors import AddressError
from pressroom.settings import Settings

__all__ = [
    "CADENCES", "CSV_COLUMNS", "STATUSES", "Audience", "ConsentEvent", "Subscriber", "check_consent", "eligible", "with_evidence",
]

Status = Literal["pending", "confirmed", "unsubscribed"]
Cadence = Literal["per-release", "weekly"]
STATUSES: tuple[str, ...] = ("pending", "confirmed", "unsubscribed")
CADENCES: tuple[str, ...] = ("per-release", "weekly")
CSV_COLUMNS = ("address", "name", "language", "topics", "cadence", "status", "consent")
CHUNK = 5_000


@dataclass(frozen=True)
class Subscriber:
    id: int
    address: str
    name: str
    language: str
    status: Status
    cadence: Cadence
    topics: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


@dataclass(frozen=True)
class ConsentEvent:
    kind: str
    at: datetime
    source: str
    detail: str


class Audience:
    """Subscribers and suppressions in the Pressroom database."""

    def __init__(self, *, url: str, default_language: str = "en", hash_keys: Sequence[bytes] = ()) -> None:
        self.engine: Engine = engine_for_url(url)
        # For look-ups: on SQLite they take no write lock, so the web app's sender reading a subscriber
        # per email does not queue behind (or hold up) the subscribe batches.
        self.reads: Engine = self.engine.execution_options(**{READS_ONLY: True})
        self.default_language = default_language
        # The site's keys (the current first): erased addresses are suppressed under their hashes,
        # and the consent chain is sealed with the first.
        self.keys = tuple(hash_keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Audience:
        """Connect (and migrate) the database named by ``settings.db_url``."""
        engine_for(settings)
        audience = cls(url=settings.db_url, default_language=settings.site.language, hash_keys=settings.signing_keys())
        seal_legacy(audience.engine, audience.keys)
        return audience

    def hashes(self, address: str) -> list[str]:
        """The keyed hashes an erasure may have left of ``address``, one per key."""
        return [address_hash(key=key, address=address) for key in self.keys]

    # ----------------------------------------------------------------- reading

    def get(self, *, address: str | None = None, subscriber_id: int | None = None) -> Subscriber | None:
        """One subscriber by address or id, or ``None``."""
        if (address is None) == (subscriber_id is None):
            raise TypeError("give exactly one of address or subscriber_id")
        by, value = (_BY_ID, subscriber_id) if address is None else (_BY_ADDRESS, normalise_address(address))
        with self.reads.connect() as conn:
            rows = conn.execute(by, {"p_value": value}).mappings().all()
        if not rows:
            return None
        return _subscriber(rows[0], tuple(sorted(row["topic"] for row in rows if row["topic"] is not None)))

    def list(self, *, status: str | None = None) -> Iterator[Subscriber]:
        """Every subscriber (optionally of one status), in address order, streamed in chunks."""
        last = ""
        while True:
            query = select(subscribers).where(subscribers.c.address > last).order_by(subscribers.c.address).limit(CHUNK)
            if status is not None:
                query = query.where(subscribers.c.status == status)
            with self.engine.connect() as conn:  # two statements: one snapshot for the rows and their topics
                rows = conn.execute(query).mappings().all()
                topics = _topics_of(conn, [row["id"] for row in rows])
            for row in rows:
                yield _subscriber(row, tuple(sorted(topics.get(row["id"], ()))))
            if len(rows) < CHUNK:
                return
            last = rows[-1]["address"]

    def count(self, *, status: str | None = None) -> int:
        """How many subscribers (of one status)."""
        query = select(func.count()).select_from(subscribers)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        with self.reads.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def events(self, *, address: str) -> list[ConsentEvent]:
        """The consent evidence of an address, oldest first."""
        with self.reads.connect() as conn:
            rows = conn.execute(
                select(consent_events).where(consent_events.c.address == normalise_address(address)).order_by(consent_events.c.id)
            ).mappings()
            return [ConsentEvent(kind=r["kind"], at=r["at"], source=r["source"], detail=r["detail"]) for r in rows]

    def unsubscribes(self, *, since: datetime, until: datetime) -> int:
        """How many unsubscribes were recorded from ``since`` up to ``until`` (a count: no one is named)."""
        with self.reads.connect() as conn:
            return int(conn.execute(
                select(func.count()).select_from(consent_events).where(
                    consent_events.c.kind == "unsubscribed", consent_events.c.at >= since, consent_events.c.at < until)
            ).scalar_one())

    def is_suppressed(self, *, address: str) -> bool:
        """Whether ``address`` is on the suppression list (as itself, or as the hash left by an erasure)."""
        clean = normalise_address(address)
        with self.reads.connect() as conn:
            return conn.execute(
                select(suppressions.c.address).where(suppressions.c.address.in_([clean, *self.hashes(clean)]))
            ).first() is not None

    # ----------------------------------------------------------------- writing

    def add(self, *, address: str, now: datetime, source: str, name: str = "", language: str | None = None,
            topics: Iterable[str] = (), cadence: str = "per-release", status: str = "confirmed", evidence: str = "") -> Subscriber:
        """Add one subscriber; :class:`AddressError` if the address is invalid or already subscribed."""
        row = self.validated(address=address, name=name, language=language, topics=topics, cadence=cadence, status=status)
        with self.engine.begin() as conn:
            if conn.execute(select(subscribers.c.id).where(subscribers.c.address == row["address"])).first():
                raise AddressError(f"{row['address']} is already a subscriber",
                                   hint="use `pressroom subscribers list` to see it, or remove it first")
            self._insert(conn, [row], now=now, source=source, evidence=[evidence])
        return self._must_get(address=row["address"])

    def import_csv(self, *, file: Path | TextIO, now: datetime, source: str | None = None, status: str = "confirmed") -> ImportReport:
        """Bulk-import a CSV (header: address, and optionally name, language, topics, cadence, status, consent).

        ``topics`` are separated by ``;`` or ``|``. Bad rows and duplicates (in the file or already
        subscribed) are reported with their line number and skipped; the good rows are imported.
        """
        report = ImportReport()
        label = source or f"import:{Path(file).name if isinstance(file, Path) else 'csv'}"
        with csv_file(file) as handle:
            reader = csv_reader(handle, CSV_COLUMNS)
            seen: set[str] = set()
            pending: list[tuple[int, dict]] = []
            for record in reader:
                row = self._csv_row(record, reader.line_num, status, seen, report)
                if row is not None:
                    pending.append((reader.line_num, row))
                if len(pending) >= CHUNK:
                    self._import_chunk(pending, report, now=now, source=label)
                    pending = []
            if pending:
                self._import_chunk(pending, report, now=now, source=label)
        return report

    def _csv_row(self, record: dict, line: int, status: str, seen: set[str], report: ImportReport) -> dict | None:
        try:
            if None in record:
                raise AddressError("the row has more fields than the header")
            row = self.validated(
                address=record.get("address") or "", name=record.get("name") or "", language=record.get("language") or None,
                topics=re.split(r"[;|]", record.get("topics") or ""), cadence=(record.get("cadence") or "per-release").strip(),
                status=(record.get("status") or status).strip(),
            )
        except AddressError as exc:
            report.problems.append((line, exc.message))
            return None
        if row["address"] in seen:
            report.duplicates += 1
            report.problems.append((line, f"{row['address']} appears earlier in the file"))
            return None
        seen.add(row["address"])
        row["_evidence"] = (record.get("consent") or "").strip()
        return row

    def export_csv(self, *, file: TextIO) -> int:
        """Write every subscriber as CSV (the import format); returns the number of rows."""
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(CSV_COLUMNS[:-1])
        count = 0
        for sub in self.list():
            writer.writerow([sub.address, sub.name, sub.language, ";".join(sub.topics), sub.cadence, sub.status])
            count += 1
        return count

    def confirm(self, *, subscriber_id: int, now: datetime, source: str, evidence: str = "") -> Subscriber:
        """Pending (or unsubscribed, re-subscribing) -> confirmed; lifts an unsubscribe suppression."""
        return self._set_status(subscriber_id, "confirmed", now=now, source=source, evidence=evidence)

    def unsubscribe(self, *, subscriber_id: int, now: datetime, source: str, evidence: str = "") -> Subscriber:
        """Stop all email to this subscriber at once, including a send already in progress."""
        return self._set_status(subscriber_id, "unsubscribed", now=now, source=source, evidence=evidence)

    def set_preferences(self, *, subscriber_id: int, now: datetime, source: str, topics: Iterable[str] | None = None,
                        cadence: str | None = None, language: str | None = None, name: str | None = None,
                        evidence: str = "") -> Subscriber:
        """Change what a subscriber receives; recorded as a consent event.

        ``evidence`` (JSON: client hash, form, its version, the text shown) is stored with the
        changes added under ``"changes"``.
        """
        values = _preference_values(now, cadence=cadence, language=language, name=name)
        with self.engine.begin() as conn:
            current = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).first()
            if current is None:
                raise AddressError(f"no subscriber with id {subscriber_id}")
            conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
            detail = []
            if topics is not None:
                clean = topic_slugs(topics)
                set_topics(conn, subscriber_id, clean)
                detail.append("topics=" + (";".join(clean) or "everything"))
            detail += [f"{k}={v}" for k, v in values.items() if k != "updated_at"]
            self.event(conn, subscriber_id, current.address, "preferences", now, source, with_evidence(evidence, changes=", ".join(detail)))
        return self._must_get(subscriber_id=subscriber_id)

    def remove(self, *, address: str, now: datetime, source: str) -> bool:
        """Unsubscribe an address and suppress it (to forget it entirely, use :func:`~pressroom.audience.erase`).

        Returns ``False`` when the address was not a subscriber.
        """
        clean = normalise_address(address)
        with self.reads.connect() as conn:
            row = conn.execute(select(subscribers.c.id).where(subscribers.c.address == clean)).first()
        if row is None:
            return False
        self._set_status(row.id, "unsubscribed", now=now, source=source, evidence="removed by an operator")
        return True

    def suppress(self, *, address: str, reason: str, now: datetime, detail: str = "", event: str = "",
                 source: str = "") -> bool:
        """Never email ``address`` again (hard bounce, complaint, unsubscribe, manual); idempotent.

        ``event``: a consent event to record with it, in the same transaction (``complained``: the
        reader told their provider our email is spam). Returns ``True`` when the address was not
        suppressed before.
        """
        clean = normalise_address(address)
        with self.engine.begin() as conn:
            result = conn.execute(
                dialect_insert(conn, suppressions)
                .values(address=clean, reason=reason, detail=detail[:2000], created_at=now)
                .on_conflict_do_nothing()
                .returning(suppressions.c.address)
            )
            new = result.first() is not None
            if event:
                subscriber = conn.execute(select(subscribers.c.id).where(subscribers.c.address == clean)).scalar()
                self.event(conn, subscriber, clean, event, now, source[:200] or reason, detail[:2000])
            return new

    def seed_if_empty(self, *, file: Path, now: datetime) -> ImportReport | None:
        """Import ``file`` only while there is no subscriber at all (the sample list of a fresh clone)."""
        if self.count() > 0 or not file.exists():
            return None
        return self.import_csv(file=file, now=now, source=f"seed:{file.name}")

    def event(self, conn: Connection, subscriber_id: int | None, address: str, kind: str, now: datetime, source: str,
              detail: str) -> None:
        """Append one consent event in ``conn``'s transaction."""
        append_events(conn, self.keys, [{"subscriber_id": subscriber_id, "address": address, "kind": kind, "at": now,
                                         "source": source, "detail": detail}])

    def validated(self, *, address: str, name: str, language: str | None, topics: Iterable[str], cadence: str, status: str) -> dict:
        """A subscriber row from what someone gave; :class:`AddressError` naming the address and the field otherwise."""
        clean = normalise_address(address)
        if cadence not in CADENCES:
            raise AddressError(f"{clean}: cadence {cadence!r} is not one of {', '.join(CADENCES)}")
        if status not in STATUSES:
            raise AddressError(f"{clean}: status {status!r} is not one of {', '.join(STATUSES)}")
        lang = check_language(clean, (language or self.default_language).strip())
        try:
            clean_name_value = clean_name(name)
        except AddressError as exc:
            raise AddressError(f"{clean}: {exc.message}", hint=exc.hint) from None
        return {"address": clean, "name": clean_name_value, "language": lang, "status": status, "cadence": cadence,
                "topics": topic_slugs(topics)}

    # ----------------------------------------------------------------- internals

    def _must_get(self, *, address: str | None = None, subscriber_id: int | None = None) -> Subscriber:
        found = self.get(address=address, subscriber_id=subscriber_id)
        assert found is not None
        return found

    def _import_chunk(self, pending: list[tuple[int, dict]], report: ImportReport, *, now: datetime, source: str) -> None:
        with self.engine.begin() as conn:
            existing = set(conn.execute(
                select(subscribers.c.address).where(subscribers.c.address.in_([row["address"] for _, row in pending]))
            ).scalars())
            fresh = []
            for line, row in pending:
                if row["address"] in existing:
                    report.duplicates += 1
                    report.problems.append((line, f"{row['address']} is already a subscriber"))
                else:
                    fresh.append((line, row))
            if fresh:
                self._insert(conn, [row for _, row in fresh], now=now, source=source,
                             evidence=[row.pop("_evidence", "") for _, row in fresh], lines=[line for line, _ in fresh])
            report.added += len(fresh)

    def _insert(self, conn: Connection, rows: list[dict], *, now: datetime, source: str, evidence: list[str],
                lines: list[int] | None = None) -> None:
        records = [
            {"address": r["address"], "name": r["name"], "language": r["language"], "status": r["status"], "cadence": r["cadence"],
             "created_at": now, "updated_at": now, "confirmed_at": now if r["status"] == "confirmed" else None,
             "unsubscribed_at": now if r["status"] == "unsubscribed" else None}
            for r in rows
        ]
        ids = conn.execute(insert(subscribers).returning(subscribers.c.id, sort_by_parameter_order=True), records).scalars().all()
        topic_rows = [{"subscriber_id": sid, "topic": t} for sid, r in zip(ids, rows) for t in r["topics"]]
        if topic_rows:
            conn.execute(insert(subscriber_topics), topic_rows)
        self._suppress_again(conn, [r["address"] for r in rows])
        append_events(conn, self.keys, [
            {"subscriber_id": sid, "address": r["address"], "kind": "subscribed" if r["status"] != "pending" else "requested",
             "at": now, "source": f"{source}:{lines[i]}" if lines else source, "detail": evidence[i] or f"status={r['status']}"}
            for i, (sid, r) in enumerate(zip(ids, rows))
        ])

    def _suppress_again(self, conn: Connection, addresses: list[str]) -> None:
        """An erased address that bounced or complained comes back suppressed: the hash finds it."""
        by_hash = {h: address for address in addresses for h in self.hashes(address)}
        hashes = list(by_hash)
        for start in range(0, len(hashes), CHUNK):
            for hit in conn.execute(select(suppressions).where(suppressions.c.address.in_(hashes[start:start + CHUNK]))).mappings().all():
                conn.execute(
                    dialect_insert(conn, suppressions)
                    .values(address=by_hash[hit["address"]], reason=hit["reason"], detail=hit["detail"], created_at=hit["created_at"])
                    .on_conflict_do_nothing()
                )

    def _set_status(self, subscriber_id: int, status: str, *, now: datetime, source: str, evidence: str) -> Subscriber:
        values: dict = {"status": status, "updated_at": now}
        if status == "confirmed":
            values["confirmed_at"] = now
        if status == "unsubscribed":
            values["unsubscribed_at"] = now
        with self.engine.begin() as conn:
            row = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                raise AddressError(f"no subscriber with id {subscriber_id}")
            conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
            close_requests(conn, subscriber_id, now)
            kind = {"confirmed": "confirmed", "unsubscribed": "unsubscribed", "pending": "requested"}[status]
            self.event(conn, subscriber_id, row.address, kind, now, source, evidence)
            if status == "unsubscribed":
                conn.execute(
                    dialect_insert(conn, suppressions)
                    .values(address=row.address, reason="unsubscribed", detail=source, created_at=now)
                    .on_conflict_do_nothing()
                )
            elif status == "confirmed":
                lift_unsubscribe(conn, row.address)
        return self._must_get(subscriber_id=subscriber_id)


def _preference_values(now: datetime, *, cadence: str | None, language: str | None, name: str | None) -> dict:
    values: dict = {"updated_at": now}
    if cadence is not None:
        if cadence not in CADENCES:
            raise AddressError(f"cadence {cadence!r} is not one of {', '.join(CADENCES)}")
        values["cadence"] = cadence
    if language is not None:
        values["language"] = language
    if name is not None:
        values["name"] = clean_name(name)
    return values


def set_topics(conn: Connection, subscriber_id: int, topics: Sequence[str]) -> None:
    """Replace a subscriber's topics."""
    conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id == subscriber_id))
    if topics:
        conn.execute(insert(subscriber_topics), [{"subscriber_id": subscriber_id, "topic": t} for t in topics])


def lift_unsubscribe(conn: Connection, address: str) -> None:
    """Re-subscribing by confirming again lifts only the unsubscribe; bounces and complaints stay suppressed."""
    conn.execute(delete(suppressions).where(and_(suppressions.c.address == address, suppressions.c.reason == "unsubscribed")))


def close_requests(conn: Connection, subscriber_id: int, now: datetime) -> None:
    """Void the links of open requests: one sent before an unsubscribe can never subscribe the address again."""
    conn.execute(
        update(subscription_requests)
        .where(subscription_requests.c.subscriber_id == subscriber_id, subscription_requests.c.closed_at.is_(None))
        .values(closed_at=now)
    )


def with_evidence(evidence: str, **extra: object) -> str:
    """``evidence`` with ``extra`` added: merged when it is a JSON object, else appended as text."""
    if evidence.startswith("{"):
        try:
            return json.dumps({**json.loads(evidence), **extra}, ensure_ascii=False, sort_keys=True)
        except ValueError:
            pass
    text = ", ".join(str(value) for value in extra.values())
    return f"{evidence}; {text}" if evidence else text


def _topics_of(conn: Connection, ids: list[int]) -> dict[int, list[str]]:
    topics: dict[int, list[str]] = {}
    if ids:
        query = select(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic).where(subscriber_topics.c.subscriber_id.in_(ids))
        for sid, topic in conn.execute(query):
            topics.setdefault(sid, []).append(topic)
    return topics


# Built once: every subscription email looks its reader up as it goes out.
_WITH_TOPICS = select(subscribers, subscriber_topics.c.topic).outerjoin(
    subscriber_topics, subscriber_topics.c.subscriber_id == subscribers.c.id
)
_BY_ID = _WITH_TOPICS.where(subscribers.c.id == bindparam("p_value"))
_BY_ADDRESS = _WITH_TOPICS.where(subscribers.c.address == bindparam("p_value"))


def _subscriber(row: RowMapping, topics: tuple[str, ...]) -> Subscriber:
    return Subscriber(
        id=row["id"], address=row["address"], name=row["name"], language=row["language"], status=row["status"],
        cadence=row["cadence"], topics=topics, created_at=row["created_at"], updated_at=row["updated_at"],
        confirmed_at=row["confirmed_at"], unsubscribed_at=row["unsubscribed_at"],
    )


def eligible(*, cadence: str, tags: Iterable[str]) -> Select:
    """SELECT of (id, address) of subscribers who should get a release with ``tags`` at ``cadence``.

    Confirmed, this cadence, not suppressed, and either no topics (everything) or a topic
    among the release's tags. Used by the ledger inside its planning transaction.
    """
    tag_list = list(tags)
    any_topic = exists().where(subscriber_topics.c.subscriber_id == subscribers.c.id)
    match = exists().where(and_(subscriber_topics.c.subscriber_id == subscribers.c.id, subscriber_topics.c.topic.in_(tag_list)))
    return select(subscribers.c.id, subscribers.c.address).where(
        subscribers.c.status == "confirmed",
        subscribers.c.cadence == cadence,
        ~exists().where(suppressions.c.address == subscribers.c.address),
        or_(~any_topic, match) if tag_list else ~any_topic,
    )


def check_consent(*, settings: Settings) -> ChainReport:
    """:func:`~pressroom.audience.consent.verify_chain` of the site's database with the site's keys (for ``pressroom doctor``)."""
    audience = Audience.from_settings(settings)  # seals the events of an upgraded database first
    return verify_chain(audience.engine, settings.signing_keys())
