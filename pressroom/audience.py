"""Subscribers, their topics and cadence, consent evidence, the suppression list, and signed links.

A subscriber is ``pending`` (asked, not yet confirmed), ``confirmed`` (receives email) or
``unsubscribed``. ``topics`` are tag slugs; none means everything. ``cadence`` is
``per-release`` (an email for each release) or ``weekly`` (the digest). Every change of
consent is appended to ``consent_events`` (never updated, never deleted except by
``remove(erase=True)``, the right to erasure) so the evidence of who agreed to what, when and
how survives. The suppression list holds addresses that must never be emailed: hard bounces,
complaints, unsubscribes, manual blocks.

Tokens in unsubscribe and preferences links are HMAC-signed with ``settings.secret_key``,
scoped to one action and one subscriber, and optionally expire.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update

from pressroom.db import (
    consent_events,
    dialect_insert,
    engine_for,
    engine_for_url,
    subscriber_topics,
    subscribers,
    suppressions,
)
from pressroom.errors import PressroomError
from pressroom.settings import Settings

__all__ = [
    "Audience",
    "AddressError",
    "ConsentEvent",
    "ImportReport",
    "Subscriber",
    "TokenError",
    "normalise_address",
    "preferences_url",
    "sign_token",
    "unsubscribe_url",
    "verify_token",
]

Status = Literal["pending", "confirmed", "unsubscribed"]
Cadence = Literal["per-release", "weekly"]
STATUSES: tuple[str, ...] = ("pending", "confirmed", "unsubscribed")
CADENCES: tuple[str, ...] = ("per-release", "weekly")
CSV_COLUMNS = ("address", "name", "language", "topics", "cadence", "status", "consent")
_CHUNK = 5_000


class AddressError(PressroomError):
    """An email address, or a row that carries one, is not acceptable."""

    hint = "write a single address such as jane.doe@example.org"


class TokenError(PressroomError):
    """A link token is forged, damaged, expired, or meant for another action."""

    hint = "the link is not valid any more; ask for a new one from the preferences page"


# --------------------------------------------------------------------------- addresses

_LOCAL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def normalise_address(address: str) -> str:
    """Trimmed, lower-cased address; raises :class:`AddressError` saying what is wrong.

    Deliberately strict (plain dot-atom local part, a dotted domain): an address a mail
    server would reject is better refused at the door than bounced at send time.
    """
    value = address.strip()
    if not value:
        raise AddressError("the address is empty")
    if any(ch.isspace() for ch in value) or any(ord(ch) < 32 for ch in value):
        raise AddressError(f"{address!r} contains spaces or control characters")
    if value.count("@") != 1:
        raise AddressError(f"{address!r} must contain exactly one @")
    local, domain = value.rsplit("@", 1)
    if not local or len(local) > 64 or not _LOCAL_RE.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise AddressError(f"{address!r}: the part before @ is not valid")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise AddressError(f"{address!r}: the domain is not valid") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels) or labels[-1].isdigit():
        raise AddressError(f"{address!r}: the domain is not valid (it needs a dot, e.g. example.org)")
    result = f"{local}@{ascii_domain.rstrip('.')}".lower()
    if len(result) > 254:
        raise AddressError(f"{address!r} is longer than 254 characters")
    return result


def _topics(values: Iterable[str]) -> tuple[str, ...]:
    from pressroom.releases import slugify

    return tuple(sorted({slugify(value) for value in values if slugify(value)}))


# --------------------------------------------------------------------------- records


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


@dataclass
class ImportReport:
    """What an import did; ``problems`` are ``(line, message)`` with the CSV line number."""

    added: int = 0
    duplicates: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(settings: Settings, payload: bytes) -> bytes:
    key = hashlib.sha256(b"pressroom-token\x00" + settings.secret_key.get_secret_value().encode()).digest()
    return hmac.new(key, payload, hashlib.sha256).digest()[:18]


def sign_token(*, settings: Settings, action: str, subscriber_id: int, expires_at: datetime | None = None) -> str:
    """A URL-safe token that lets its bearer do ``action`` for one subscriber (until ``expires_at``)."""
    if ":" in action:
        raise ValueError("action names cannot contain ':'")
    expiry = "" if expires_at is None else str(int(expires_at.timestamp()))
    payload = f"{action}:{subscriber_id}:{expiry}".encode()
    return f"{_b64(payload)}.{_b64(_mac(settings, payload))}"


def verify_token(*, settings: Settings, token: str, action: str, now: datetime | None = None) -> int:
    """The subscriber id inside a valid token for ``action``; :class:`TokenError` otherwise."""
    try:
        payload_text, mac_text = token.split(".", 1)
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        raise TokenError("the link token is damaged") from None
    if not hmac.compare_digest(mac, _mac(settings, payload)):
        raise TokenError("the link token is not genuine")
    token_action, subscriber, expiry = payload.decode().split(":")
    if token_action != action:
        raise TokenError(f"this link is for {token_action!r}, not {action!r}")
    moment = now or datetime.now(UTC)
    if expiry and moment.timestamp() >= int(expiry):
        raise TokenError("the link has expired")
    return int(subscriber)


def unsubscribe_url(*, settings: Settings, subscriber_id: int) -> str:
    """The one-click unsubscribe link of a subscriber (never expires, as RFC 8058 expects)."""
    token = sign_token(settings=settings, action="unsubscribe", subscriber_id=subscriber_id)
    return f"{settings.site.base_url}/unsubscribe?token={token}"  # tokens are URL-safe as they are


def preferences_url(*, settings: Settings, subscriber_id: int) -> str:
    """The link to a subscriber's preferences page (topics, cadence, language)."""
    token = sign_token(settings=settings, action="preferences", subscriber_id=subscriber_id)
    return f"{settings.site.base_url}/preferences?token={token}"


# --------------------------------------------------------------------------- the audience


class Audience:
    """Subscribers and suppressions in the Pressroom database."""

    def __init__(self, *, url: str, default_language: str = "en") -> None:
        self._engine = engine_for_url(url)
        self._language = default_language

    @classmethod
    def from_settings(cls, settings: Settings) -> Audience:
        """Connect (and migrate) the database named by ``settings.db_url``."""
        engine_for(settings)
        return cls(url=settings.db_url, default_language=settings.site.language)

    # ----------------------------------------------------------------- reading

    def get(self, *, address: str | None = None, subscriber_id: int | None = None) -> Subscriber | None:
        """One subscriber by address or id, or ``None``."""
        if (address is None) == (subscriber_id is None):
            raise TypeError("give exactly one of address or subscriber_id")
        where = subscribers.c.id == subscriber_id if address is None else subscribers.c.address == normalise_address(address)
        with self._engine.connect() as conn:
            row = conn.execute(select(subscribers).where(where)).mappings().first()
            if row is None:
                return None
            topics = conn.execute(
                select(subscriber_topics.c.topic).where(subscriber_topics.c.subscriber_id == row["id"])
            ).scalars()
            return _subscriber(row, tuple(sorted(topics)))

    def list(self, *, status: str | None = None) -> Iterator[Subscriber]:
        """Every subscriber (optionally of one status), in address order, streamed in chunks."""
        last = ""
        while True:
            query = select(subscribers).where(subscribers.c.address > last).order_by(subscribers.c.address).limit(_CHUNK)
            if status is not None:
                query = query.where(subscribers.c.status == status)
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
                ids = [row["id"] for row in rows]
                topics: dict[int, list[str]] = {}
                if ids:
                    for sid, topic in conn.execute(
                        select(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic).where(
                            subscriber_topics.c.subscriber_id.in_(ids)
                        )
                    ):
                        topics.setdefault(sid, []).append(topic)
            for row in rows:
                yield _subscriber(row, tuple(sorted(topics.get(row["id"], ()))))
            if len(rows) < _CHUNK:
                return
            last = rows[-1]["address"]

    def count(self, *, status: str | None = None) -> int:
        """How many subscribers (of one status)."""
        query = select(func.count()).select_from(subscribers)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def events(self, *, address: str) -> list[ConsentEvent]:
        """The consent evidence of an address, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(consent_events)
                .where(consent_events.c.address == normalise_address(address))
                .order_by(consent_events.c.id)
            ).mappings()
            return [ConsentEvent(kind=r["kind"], at=r["at"], source=r["source"], detail=r["detail"]) for r in rows]

    # ----------------------------------------------------------------- writing

    def add(
        self,
        *,
        address: str,
        now: datetime,
        source: str,
        name: str = "",
        language: str | None = None,
        topics: Iterable[str] = (),
        cadence: str = "per-release",
        status: str = "confirmed",
        evidence: str = "",
    ) -> Subscriber:
        """Add one subscriber; :class:`AddressError` if the address is invalid or already subscribed."""
        row = self._validated(address=address, name=name, language=language, topics=topics, cadence=cadence, status=status)
        with self._engine.begin() as conn:
            if conn.execute(select(subscribers.c.id).where(subscribers.c.address == row["address"])).first():
                raise AddressError(
                    f"{row['address']} is already a subscriber",
                    hint="use `pressroom subscribers list` to see it, or remove it first",
                )
            self._insert(conn, [row], now=now, source=source, evidence=[evidence])
        result = self.get(address=row["address"])
        assert result is not None
        return result

    def import_csv(self, *, file: Path | TextIO, now: datetime, source: str | None = None, status: str = "confirmed") -> ImportReport:
        """Bulk-import a CSV (header: address, and optionally name, language, topics, cadence, status, consent).

        ``topics`` are separated by ``;`` or ``|``. Bad rows and duplicates (in the file or already
        subscribed) are reported with their line number and skipped; the good rows are imported.
        """
        report = ImportReport()
        label = source or f"import:{Path(file).name if isinstance(file, Path) else 'csv'}"
        handle: TextIO = open(file, encoding="utf-8-sig", newline="") if isinstance(file, Path) else file
        try:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            if "email" in header and "address" not in header:
                header[header.index("email")] = "address"
            unknown = [h for h in header if h not in CSV_COLUMNS]
            if "address" not in header or unknown:
                raise AddressError(
                    f"the CSV header {reader.fieldnames!r} " + (f"has unknown columns {unknown}" if unknown else "has no 'address' column"),
                    hint="the first line must name the columns: " + ",".join(CSV_COLUMNS) + " (only address is required)",
                )
            reader.fieldnames = header
            seen: set[str] = set()
            pending: list[tuple[int, dict]] = []
            for record in reader:
                line = reader.line_num
                try:
                    if None in record:
                        raise AddressError("the row has more fields than the header")
                    topics = re.split(r"[;|]", record.get("topics") or "")
                    row = self._validated(
                        address=record.get("address") or "",
                        name=record.get("name") or "",
                        language=record.get("language") or None,
                        topics=topics,
                        cadence=(record.get("cadence") or "per-release").strip(),
                        status=(record.get("status") or status).strip(),
                    )
                except AddressError as exc:
                    report.problems.append((line, exc.message))
                    continue
                if row["address"] in seen:
                    report.duplicates += 1
                    report.problems.append((line, f"{row['address']} appears earlier in the file"))
                    continue
                seen.add(row["address"])
                row["_evidence"] = (record.get("consent") or "").strip()
                pending.append((line, row))
                if len(pending) >= _CHUNK:
                    self._import_chunk(pending, report, now=now, source=label)
                    pending = []
            if pending:
                self._import_chunk(pending, report, now=now, source=label)
        finally:
            if isinstance(file, Path):
                handle.close()
        return report

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

    def set_preferences(
        self,
        *,
        subscriber_id: int,
        now: datetime,
        source: str,
        topics: Iterable[str] | None = None,
        cadence: str | None = None,
        language: str | None = None,
        name: str | None = None,
    ) -> Subscriber:
        """Change what a subscriber receives; recorded as a consent event."""
        values: dict = {"updated_at": now}
        if cadence is not None:
            if cadence not in CADENCES:
                raise AddressError(f"cadence {cadence!r} is not one of {', '.join(CADENCES)}")
            values["cadence"] = cadence
        if language is not None:
            values["language"] = language
        if name is not None:
            values["name"] = " ".join(name.split())[:200]
        with self._engine.begin() as conn:
            current = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).mappings().first()
            if current is None:
                raise AddressError(f"no subscriber with id {subscriber_id}")
            conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
            detail = []
            if topics is not None:
                clean = _topics(topics)
                conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id == subscriber_id))
                if clean:
                    conn.execute(insert(subscriber_topics), [{"subscriber_id": subscriber_id, "topic": t} for t in clean])
                detail.append("topics=" + (";".join(clean) or "everything"))
            detail += [f"{k}={v}" for k, v in values.items() if k != "updated_at"]
            self._event(conn, subscriber_id, current["address"], "preferences", now, source, ", ".join(detail))
        result = self.get(subscriber_id=subscriber_id)
        assert result is not None
        return result

    def remove(self, *, address: str, now: datetime, source: str, erase: bool = False) -> bool:
        """Unsubscribe an address and suppress it; with ``erase`` also delete it and its evidence.

        Returns ``False`` when the address was not a subscriber.
        """
        clean = normalise_address(address)
        with self._engine.begin() as conn:
            row = conn.execute(select(subscribers.c.id).where(subscribers.c.address == clean)).first()
            if row is None:
                return False
            if erase:
                conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id == row.id))
                conn.execute(delete(subscribers).where(subscribers.c.id == row.id))
                conn.execute(delete(consent_events).where(consent_events.c.address == clean))
                return True
        self._set_status(row.id, "unsubscribed", now=now, source=source, evidence="removed by an operator")
        return True

    def suppress(self, *, address: str, reason: str, now: datetime, detail: str = "") -> bool:
        """Never email ``address`` again (hard bounce, complaint, unsubscribe, manual); idempotent.

        Returns ``True`` when the address was not suppressed before.
        """
        clean = normalise_address(address)
        with self._engine.begin() as conn:
            result = conn.execute(
                dialect_insert(conn, suppressions)
                .values(address=clean, reason=reason, detail=detail[:2000], created_at=now)
                .on_conflict_do_nothing()
                .returning(suppressions.c.address)
            )
            return result.first() is not None

    def is_suppressed(self, *, address: str) -> bool:
        """Whether ``address`` is on the suppression list."""
        with self._engine.connect() as conn:
            return conn.execute(
                select(suppressions.c.address).where(suppressions.c.address == normalise_address(address))
            ).first() is not None

    def seed_if_empty(self, *, file: Path, now: datetime) -> ImportReport | None:
        """Import ``file`` only while there is no subscriber at all (the sample list of a fresh clone)."""
        if self.count() > 0 or not file.exists():
            return None
        return self.import_csv(file=file, now=now, source=f"seed:{file.name}")

    # ----------------------------------------------------------------- internals

    def _validated(self, *, address: str, name: str, language: str | None, topics: Iterable[str], cadence: str, status: str) -> dict:
        clean = normalise_address(address)
        if cadence not in CADENCES:
            raise AddressError(f"{clean}: cadence {cadence!r} is not one of {', '.join(CADENCES)}")
        if status not in STATUSES:
            raise AddressError(f"{clean}: status {status!r} is not one of {', '.join(STATUSES)}")
        lang = (language or self._language).strip()
        if not re.fullmatch(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*", lang):
            raise AddressError(f"{clean}: language {lang!r} is not a language tag such as en or pt-BR")
        return {
            "address": clean,
            "name": " ".join(name.split())[:200],
            "language": lang,
            "status": status,
            "cadence": cadence,
            "topics": _topics(topics),
        }

    def _import_chunk(self, pending: list[tuple[int, dict]], report: ImportReport, *, now: datetime, source: str) -> None:
        with self._engine.begin() as conn:
            existing = set(
                conn.execute(
                    select(subscribers.c.address).where(subscribers.c.address.in_([row["address"] for _, row in pending]))
                ).scalars()
            )
            fresh = []
            for line, row in pending:
                if row["address"] in existing:
                    report.duplicates += 1
                    report.problems.append((line, f"{row['address']} is already a subscriber"))
                else:
                    fresh.append((line, row))
            if fresh:
                self._insert(
                    conn,
                    [row for _, row in fresh],
                    now=now,
                    source=source,
                    evidence=[row.pop("_evidence", "") for _, row in fresh],
                    lines=[line for line, _ in fresh],
                )
            report.added += len(fresh)

    def _insert(self, conn, rows: list[dict], *, now: datetime, source: str, evidence: list[str], lines: list[int] | None = None) -> None:
        records = [
            {
                "address": r["address"],
                "name": r["name"],
                "language": r["language"],
                "status": r["status"],
                "cadence": r["cadence"],
                "created_at": now,
                "updated_at": now,
                "confirmed_at": now if r["status"] == "confirmed" else None,
                "unsubscribed_at": now if r["status"] == "unsubscribed" else None,
            }
            for r in rows
        ]
        ids = conn.execute(
            insert(subscribers).returning(subscribers.c.id, sort_by_parameter_order=True), records
        ).scalars().all()
        topic_rows = [{"subscriber_id": sid, "topic": t} for sid, r in zip(ids, rows) for t in r["topics"]]
        if topic_rows:
            conn.execute(insert(subscriber_topics), topic_rows)
        conn.execute(
            insert(consent_events),
            [
                {
                    "subscriber_id": sid,
                    "address": r["address"],
                    "kind": "subscribed" if r["status"] != "pending" else "requested",
                    "at": now,
                    "source": f"{source}:{lines[i]}" if lines else source,
                    "detail": evidence[i] or f"status={r['status']}",
                }
                for i, (sid, r) in enumerate(zip(ids, rows))
            ],
        )

    def _set_status(self, subscriber_id: int, status: str, *, now: datetime, source: str, evidence: str) -> Subscriber:
        values: dict = {"status": status, "updated_at": now}
        if status == "confirmed":
            values["confirmed_at"] = now
        if status == "unsubscribed":
            values["unsubscribed_at"] = now
        with self._engine.begin() as conn:
            row = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                raise AddressError(f"no subscriber with id {subscriber_id}")
            conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
            kind = {"confirmed": "confirmed", "unsubscribed": "unsubscribed", "pending": "requested"}[status]
            self._event(conn, subscriber_id, row.address, kind, now, source, evidence)
            if status == "unsubscribed":
                conn.execute(
                    dialect_insert(conn, suppressions)
                    .values(address=row.address, reason="unsubscribed", detail=source, created_at=now)
                    .on_conflict_do_nothing()
                )
            elif status == "confirmed":
                # Re-subscribing by confirming again lifts only the unsubscribe; bounces stay suppressed.
                conn.execute(
                    delete(suppressions).where(
                        and_(suppressions.c.address == row.address, suppressions.c.reason == "unsubscribed")
                    )
                )
        result = self.get(subscriber_id=subscriber_id)
        assert result is not None
        return result

    @staticmethod
    def _event(conn, subscriber_id: int | None, address: str, kind: str, now: datetime, source: str, detail: str) -> None:
        conn.execute(
            insert(consent_events).values(
                subscriber_id=subscriber_id, address=address, kind=kind, at=now, source=source[:200], detail=detail
            )
        )


def _subscriber(row, topics: tuple[str, ...]) -> Subscriber:
    return Subscriber(
        id=row["id"],
        address=row["address"],
        name=row["name"],
        language=row["language"],
        status=row["status"],
        cadence=row["cadence"],
        topics=topics,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        confirmed_at=row["confirmed_at"],
        unsubscribed_at=row["unsubscribed_at"],
    )


def eligible(*, cadence: str, tags: Iterable[str]):
    """SELECT of (id, address) of subscribers who should get a release with ``tags`` at ``cadence``.

    Confirmed, this cadence, not suppressed, and either no topics (everything) or a topic
    among the release's tags. Used by the ledger inside its planning transaction.
    """
    tag_list = list(tags)
    any_topic = exists().where(subscriber_topics.c.subscriber_id == subscribers.c.id)
    match = exists().where(
        and_(subscriber_topics.c.subscriber_id == subscribers.c.id, subscriber_topics.c.topic.in_(tag_list))
    )
    return select(subscribers.c.id, subscribers.c.address).where(
        subscribers.c.status == "confirmed",
        subscribers.c.cadence == cadence,
        ~exists().where(suppressions.c.address == subscribers.c.address),
        or_(~any_topic, match) if tag_list else ~any_topic,
    )


# --------------------------------------------------------------------------- for the web app (pressroom/web.py)


def request_subscription(
    *,
    audience: Audience,
    address: str,
    now: datetime,
    source: str,
    evidence: str,
    name: str = "",
    language: str | None = None,
    topics: Iterable[str] = (),
    cadence: str = "per-release",
    confirmations_since: datetime,
    max_confirmations: int,
    may_confirm: bool = True,
) -> int | None:
    """Record a subscribe-form request (double opt-in) in one transaction.

    A new address becomes ``pending`` with the request as its first consent event. A pending or
    unsubscribed one keeps the new choices (they matter only once confirmed) and gets a
    ``requested`` event; a confirmed one is left alone. Returns the id of the subscriber to whom a
    confirmation email should go now, recorded as a ``confirmation-sent`` event, or ``None``: when
    confirmed already, suppressed for another reason than its own unsubscribe (a bounce, a
    complaint), ``may_confirm`` is false, or ``max_confirmations`` went out since ``confirmations_since``.
    """
    from sqlalchemy.exc import IntegrityError  # here, not at the top: this block is appended for easy rebases

    for attempt in (1, 2):
        try:
            return _request_subscription(
                audience, address=address, now=now, source=source, evidence=evidence, name=name, language=language,
                topics=topics, cadence=cadence, since=confirmations_since, limit=max_confirmations, may_confirm=may_confirm,
            )
        except IntegrityError:
            if attempt == 2:  # a concurrent request inserted the same address: the retry sees it
                raise
    return None


def _request_subscription(
    audience: Audience, *, address: str, now: datetime, source: str, evidence: str, name: str, language: str | None,
    topics: Iterable[str], cadence: str, since: datetime, limit: int, may_confirm: bool,
) -> int | None:
    values = audience._validated(address=address, name=name, language=language, topics=topics, cadence=cadence, status="pending")
    clean = values["address"]
    with audience._engine.begin() as conn:
        row = conn.execute(select(subscribers.c.id, subscribers.c.status).where(subscribers.c.address == clean)).first()
        if row is None:
            audience._insert(conn, [values], now=now, source=source, evidence=[evidence])
            subscriber_id = conn.execute(select(subscribers.c.id).where(subscribers.c.address == clean)).scalar_one()
        elif row.status == "confirmed":
            return None
        else:
            subscriber_id = row.id
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(name=values["name"], cadence=values["cadence"], updated_at=now)
            )
            conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id == subscriber_id))
            if values["topics"]:
                conn.execute(insert(subscriber_topics), [{"subscriber_id": subscriber_id, "topic": t} for t in values["topics"]])
            Audience._event(conn, subscriber_id, clean, "requested", now, source, evidence)
        reason = conn.execute(select(suppressions.c.reason).where(suppressions.c.address == clean)).scalar()
        if not may_confirm or reason not in (None, "unsubscribed"):
            return None
        sent = conn.execute(
            select(func.count())
            .select_from(consent_events)
            .where(
                consent_events.c.address == clean,
                consent_events.c.kind == "confirmation-sent",
                consent_events.c.at >= since,
            )
        ).scalar_one()
        if sent >= limit:
            return None
        Audience._event(conn, subscriber_id, clean, "confirmation-sent", now, source, "")
        return subscriber_id


def erase(*, audience: Audience, subscriber_id: int) -> bool:
    """The right to erasure: delete the subscriber, their topics, consent events and suppression entries.

    Returns ``False`` when there was no such subscriber. Nothing about the address remains, so
    it can come back only by subscribing (and confirming) again.
    """
    with audience._engine.begin() as conn:
        row = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).first()
        if row is None:
            return False
        conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id == subscriber_id))
        conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
        conn.execute(delete(consent_events).where(consent_events.c.address == row.address))
        conn.execute(delete(suppressions).where(suppressions.c.address == row.address))
        return True


def expire_pending(*, audience: Audience, before: datetime) -> int:
    """Delete subscriptions still unconfirmed whose last request is older than ``before``; returns how many.

    They never consented, so nothing of them is kept (their events go too).
    """
    with audience._engine.begin() as conn:
        stale = select(subscribers.c.id, subscribers.c.address).where(
            subscribers.c.status == "pending", subscribers.c.updated_at < before
        )
        rows = conn.execute(stale).all()
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            ids = [r.id for r in chunk]
            conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id.in_(ids)))
            conn.execute(delete(subscribers).where(subscribers.c.id.in_(ids)))
            conn.execute(delete(consent_events).where(consent_events.c.address.in_([r.address for r in chunk])))
        return len(rows)
