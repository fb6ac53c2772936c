"""Subscribers, their topics and cadence, consent evidence, the suppression list, and signed links.

A subscriber is ``pending`` (asked, not yet confirmed), ``confirmed`` (receives email) or
``unsubscribed``. ``topics`` are tag slugs; none means everything. ``cadence`` is
``per-release`` (an email for each release) or ``weekly`` (the digest). Every change of
consent is appended to ``consent_events`` (the database refuses an UPDATE; rows go only by
:func:`erase`, the right to erasure, or when an unconfirmed request expires) so the evidence of
who agreed to what, when and how survives. The suppression list holds addresses that must never
be emailed: hard bounces, complaints, unsubscribes, manual blocks; after erasure a bounce or a
complaint stays there as a keyed hash only.

Tokens in links are HMAC-signed with ``settings.signing_keys()`` (the current key signs, previous
keys still verify), scoped to one action and one subscriber (or one subscription request), and
optionally expire. This module is the one home of the rules for addresses
(:func:`normalise_address`, :func:`mailbox`), names (:func:`clean_name`), cadences
(:data:`CADENCES`) and erasure (:func:`erase`); language tags follow ``releases.LANGUAGE_RE``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import functools
import hashlib
import hmac
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from pathlib import Path
from typing import Literal, TextIO

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, type_coerce, update

from pressroom.db import (
    consent_events,
    deliveries,
    delivery_conflicts,
    dialect_insert,
    engine_for,
    engine_for_url,
    journalists,
    preview_opens,
    queue_deliveries,
    subscriber_topics,
    subscribers,
    subscription_requests,
    suppressions,
)
from pressroom.errors import AddressError, TokenError  # re-exported: callers import them from here too
from pressroom.i18n import N_
from pressroom.releases import LANGUAGE_RE
from pressroom.settings import Settings

__all__ = [
    "Audience",
    "AddressError",
    "ConsentEvent",
    "ImportReport",
    "Journalist",
    "MediaList",
    "Subscriber",
    "TokenError",
    "CADENCES",
    "Requested",
    "address_hash",
    "check_request",
    "clean_name",
    "confirm_request",
    "erase",
    "journalist_unsubscribe_url",
    "expire_pending",
    "mailbox",
    "normalise_address",
    "preferences_url",
    "SubscribeRequest",
    "preview_url",
    "request_subscription",
    "request_subscriptions",
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
_MAX_NAME = 100
_HASH_PREFIX = "h:"

log = logging.getLogger("pressroom.audience")


# --------------------------------------------------------------------------- addresses

_LOCAL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")


def normalise_address(address: str) -> str:
    """Trimmed, lower-cased address; raises :class:`AddressError` saying what is wrong.

    Deliberately strict (plain dot-atom local part, a dotted domain): an address a mail
    server would reject is better refused at the door than bounced at send time.
    """
    value = address.strip()
    if not value:
        raise AddressError("the address is empty")
    if _SPACE_OR_CONTROL.search(value):
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


def mailbox(address: str) -> str:
    """The mailbox an address reaches, for counting: normalised, without a ``+tag``.

    ``Jane+news@Example.org.`` and ``jane@example.org`` are one inbox, so a cap on emails per
    address counts them once.
    """
    local, _, domain = normalise_address(address).rpartition("@")
    return f"{local.split('+', 1)[0] or local}@{domain}"


# Names end up in headers and greetings: drop controls, format characters and line separators.
_UNSAFE_IN_NAME = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
# Dots a reader takes for a dot, beyond what NFKC already folds (full-width, small, one-dot leader).
_DOT_LIKE = str.maketrans({"\u3002": ".", "\uff61": ".", "\u00b7": ".", "\u2219": ".", "\u22c5": ".", "\u0701": "."})
_LINK_IN_NAME = re.compile(
    r"://|\bwww\b|\bhttps?\b|xn--|@|[^\W_](?:\.|\s*(?:\(dot\)|\[dot\]|\[\.\]|\(\.\))\s*)[^\W\d_]{2}",
    re.IGNORECASE,
)


def clean_name(value: str, *, links: bool = False) -> str:
    """A name as it is stored and shown: one line, no control or invisible characters, at most 100 characters.

    RFC 2047 encoded words (``=?utf-8?b?...?=``) are decoded first, so what is checked is what a
    mail client would show. Unless ``links`` (operator-written text: the site's or sender's name),
    anything that reads as a web address, an email address or a domain, look-alike dots
    included, raises :class:`AddressError`: a name travels into emails, so a link in it would be
    a way to send that link to anyone, from us.
    """
    decoded = value
    if "=?" in value:
        try:
            decoded = str(make_header(decode_header(value)))
        except (HeaderParseError, LookupError, UnicodeError, ValueError):
            decoded = value
    # Printable ASCII (most names, checked again for every message of a fan-out) has no unsafe
    # character and nothing for NFKC or the look-alike dots to fold.
    plain = decoded.isascii() and decoded.isprintable()
    kept = decoded if plain else "".join(" " if unicodedata.category(ch) in _UNSAFE_IN_NAME else ch for ch in decoded)
    name = " ".join(kept.split())[:_MAX_NAME].strip()
    if not links and _LINK_IN_NAME.search(name if plain else unicodedata.normalize("NFKC", name).translate(_DOT_LIKE)):
        raise AddressError(
            f"the name {name!r} reads as a web or email address",
            hint="a name cannot contain a web address, an email address or a domain; write the name alone",
        )
    return name


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


def _mac(key: bytes, payload: bytes) -> bytes:
    mac = _keyed(key).copy()  # every email carries two signed links: the keyed state is made once
    mac.update(payload)
    return mac.digest()[:18]


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(hashlib.sha256(b"pressroom-token\x00" + key).digest(), digestmod=hashlib.sha256)


def sign_token(*, settings: Settings, action: str, subscriber_id: int, expires_at: datetime | None = None) -> str:
    """A URL-safe token that lets its bearer do ``action`` for one subscriber (until ``expires_at``).

    Signed with the current key only; :func:`verify_token` also accepts ``[web] previous_secret_keys``.
    """
    if ":" in action:
        raise ValueError("action names cannot contain ':'")
    expiry = "" if expires_at is None else str(int(expires_at.timestamp()))
    payload = f"{action}:{subscriber_id}:{expiry}".encode()
    return f"{_b64(payload)}.{_b64(_mac(settings.signing_keys()[0], payload))}"


def verify_token(*, settings: Settings, token: str, action: str, now: datetime | None = None) -> int:
    """The subscriber id inside a valid token for ``action``; :class:`TokenError` otherwise."""
    try:
        payload_text, mac_text = token.split(".", 1)
        payload, mac = _unb64(payload_text), _unb64(mac_text)
        token_action, subscriber, expiry = payload.decode("ascii").split(":")
        number = int(subscriber)
        deadline = int(expiry) if expiry else None
    except (ValueError, TypeError, UnicodeError):
        raise TokenError(N_("the link token is damaged")) from None
    if not any(hmac.compare_digest(mac, _mac(key, payload)) for key in settings.signing_keys()):
        raise TokenError(N_("the link token is not genuine"))
    if token_action != action:
        raise TokenError(f"this link is for {token_action!r}, not {action!r}")
    moment = now or datetime.now(UTC)
    if deadline is not None and moment.timestamp() >= deadline:
        raise TokenError(N_("the link has expired"))
    return number


def address_hash(*, key: bytes, address: str) -> str:
    """What is kept of an erased address that must stay suppressed: a keyed hash, useless without the key."""
    digest = hmac.new(hashlib.sha256(b"pressroom-address\x00" + key).digest(), address.encode(), hashlib.sha256)
    return _HASH_PREFIX + digest.hexdigest()[:40]


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

    def __init__(self, *, url: str, default_language: str = "en", hash_keys: Sequence[bytes] = ()) -> None:
        self._engine = engine_for_url(url)
        self._language = default_language
        # Keys of the hashes erased addresses are suppressed under (the current key first).
        self._hash_keys = tuple(hash_keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Audience:
        """Connect (and migrate) the database named by ``settings.db_url``."""
        engine_for(settings)
        return cls(url=settings.db_url, default_language=settings.site.language, hash_keys=settings.signing_keys())

    def _hashes(self, address: str) -> list[str]:
        return [address_hash(key=key, address=address) for key in self._hash_keys]

    # ----------------------------------------------------------------- reading

    def get(self, *, address: str | None = None, subscriber_id: int | None = None) -> Subscriber | None:
        """One subscriber by address or id, or ``None``."""
        if (address is None) == (subscriber_id is None):
            raise TypeError("give exactly one of address or subscriber_id")
        by, value = (_BY_ID, subscriber_id) if address is None else (_BY_ADDRESS, normalise_address(address))
        with self._engine.connect() as conn:
            rows = conn.execute(by, {"p_value": value}).mappings().all()
        if not rows:
            return None
        return _subscriber(rows[0], tuple(sorted(row["topic"] for row in rows if row["topic"] is not None)))

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
        with _csv_file(file) as handle:
            reader = _csv_reader(handle, CSV_COLUMNS)
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
        evidence: str = "",
    ) -> Subscriber:
        """Change what a subscriber receives; recorded as a consent event.

        ``evidence`` (JSON: client hash, form, its version, the text shown) is stored with the
        changes added under ``"changes"``.
        """
        values: dict = {"updated_at": now}
        if cadence is not None:
            if cadence not in CADENCES:
                raise AddressError(f"cadence {cadence!r} is not one of {', '.join(CADENCES)}")
            values["cadence"] = cadence
        if language is not None:
            values["language"] = language
        if name is not None:
            values["name"] = clean_name(name)
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
            self._event(conn, subscriber_id, current["address"], "preferences", now, source, _with(evidence, changes=", ".join(detail)))
        result = self.get(subscriber_id=subscriber_id)
        assert result is not None
        return result

    def remove(self, *, address: str, now: datetime, source: str) -> bool:
        """Unsubscribe an address and suppress it (to forget it entirely, use :func:`erase`).

        Returns ``False`` when the address was not a subscriber.
        """
        clean = normalise_address(address)
        with self._engine.connect() as conn:
            row = conn.execute(select(subscribers.c.id).where(subscribers.c.address == clean)).first()
        if row is None:
            return False
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
        """Whether ``address`` is on the suppression list (as itself, or as the hash left by an erasure)."""
        clean = normalise_address(address)
        with self._engine.connect() as conn:
            return conn.execute(
                select(suppressions.c.address).where(suppressions.c.address.in_([clean, *self._hashes(clean)]))
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
        if not LANGUAGE_RE.match(lang):
            raise AddressError(f"{clean}: language {lang!r} is not a language tag such as en or pt-BR")
        try:
            clean_name_value = clean_name(name)
        except AddressError as exc:
            raise AddressError(f"{clean}: {exc.message}", hint=exc.hint) from None
        return {
            "address": clean,
            "name": clean_name_value,
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
        if self._hash_keys:
            # An erased address that bounced or complained comes back suppressed: the hash finds it.
            by_hash = {h: r["address"] for r in rows for h in self._hashes(r["address"])}
            for start in range(0, len(by_hash), _CHUNK):
                found = conn.execute(
                    select(suppressions).where(suppressions.c.address.in_(list(by_hash)[start : start + _CHUNK]))
                ).mappings().all()
                for hit in found:
                    conn.execute(
                        dialect_insert(conn, suppressions)
                        .values(address=by_hash[hit["address"]], reason=hit["reason"], detail=hit["detail"], created_at=hit["created_at"])
                        .on_conflict_do_nothing()
                    )
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
            _close_requests(conn, subscriber_id, now)
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


@contextlib.contextmanager
def _csv_file(file: Path | TextIO) -> Iterator[TextIO]:
    """``file`` open for reading as CSV (a BOM from a spreadsheet skipped); a stream given is left open."""
    if not isinstance(file, Path):
        yield file
        return
    with open(file, encoding="utf-8-sig", newline="") as handle:
        yield handle


def _csv_reader(handle: TextIO, columns: Sequence[str]) -> csv.DictReader:
    """A CSV reader whose header is checked against ``columns`` (``email`` taken for ``address``)."""
    reader = csv.DictReader(handle)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" in header and "address" not in header:
        header[header.index("email")] = "address"
    unknown = [h for h in header if h not in columns]
    if "address" not in header or unknown:
        raise AddressError(
            f"the CSV header {reader.fieldnames!r} " + (f"has unknown columns {unknown}" if unknown else "has no 'address' column"),
            hint="the first line must name the columns: " + ",".join(columns) + " (only address is required)",
        )
    reader.fieldnames = header
    return reader


def _with(evidence: str, **extra: object) -> str:
    """``evidence`` with ``extra`` added: merged when it is a JSON object, else appended as text."""
    if evidence.startswith("{"):
        try:
            return json.dumps({**json.loads(evidence), **extra}, ensure_ascii=False, sort_keys=True)
        except ValueError:
            pass
    text = ", ".join(str(value) for value in extra.values())
    return f"{evidence}; {text}" if evidence else text


def _close_requests(conn, subscriber_id: int, now: datetime) -> None:
    # Every status change voids the links of earlier requests: one sent before an unsubscribe
    # can never subscribe the address again.
    conn.execute(
        update(subscription_requests)
        .where(subscription_requests.c.subscriber_id == subscriber_id, subscription_requests.c.closed_at.is_(None))
        .values(closed_at=now)
    )


# Built once: every subscription email looks its reader up as it goes out.
_WITH_TOPICS = select(subscribers, subscriber_topics.c.topic).outerjoin(
    subscriber_topics, subscriber_topics.c.subscriber_id == subscribers.c.id
)
_BY_ID = _WITH_TOPICS.where(subscribers.c.id == bindparam("p_value"))
_BY_ADDRESS = _WITH_TOPICS.where(subscribers.c.address == bindparam("p_value"))


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


# --------------------------------------------------------------------------- the subscription flow and erasure


@dataclass(frozen=True)
class Requested:
    """A subscription request that should get a confirmation email now."""

    subscriber_id: int
    request_id: int


Confirmation = Callable[[Requested], tuple[str, str, str]]


@dataclass(frozen=True)
class SubscribeRequest:
    """One subscribe-form request: the address and the choices it came with.

    ``confirmation`` gives the (key, channel, payload) of its confirmation email's delivery,
    queued in the same transaction: the request and its email are recorded together or not at all.
    """

    address: str
    evidence: str
    name: str = ""
    language: str | None = None
    topics: tuple[str, ...] = ()
    cadence: str = "per-release"
    may_confirm: bool = True
    confirmation: Confirmation | None = None


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
    site_since: datetime | None = None,
    site_max_confirmations: int | None = None,
    may_confirm: bool = True,
    confirmation: Confirmation | None = None,
) -> Requested | None:
    """Record a subscribe-form request (double opt-in) in one transaction.

    A new address becomes ``pending``. Every request is kept apart with its own choices (name,
    topics, cadence, language): confirming one link applies that request's choices and nothing
    of another's; until then the subscriber's own choices are untouched. A confirmed address
    keeps its choices (the request is recorded, closed, with a ``requested`` event). Returns the request to email a confirmation link for, or ``None``: confirmed
    already, suppressed for another reason than its own unsubscribe (a bounce, a complaint, also
    after erasure), ``may_confirm`` false, ``max_confirmations`` sent to this mailbox (case and
    ``+tag`` aside) since ``confirmations_since``, or ``site_max_confirmations`` sent by the whole
    site since ``site_since``. Raises :class:`AddressError` for a bad address or choice.
    """
    request = SubscribeRequest(address=address, evidence=evidence, name=name, language=language, topics=tuple(topics),
                               cadence=cadence, may_confirm=may_confirm, confirmation=confirmation)
    (result,) = request_subscriptions(
        audience=audience, requests=[request], now=now, source=source, confirmations_since=confirmations_since,
        max_confirmations=max_confirmations, site_since=site_since, site_max_confirmations=site_max_confirmations,
    )
    if isinstance(result, AddressError):
        raise result
    return result


def request_subscriptions(
    *,
    audience: Audience,
    requests: Sequence[SubscribeRequest],
    now: datetime,
    source: str,
    confirmations_since: datetime,
    max_confirmations: int,
    site_since: datetime | None = None,
    site_max_confirmations: int | None = None,
) -> list[Requested | None | AddressError]:
    """:func:`request_subscription` for several requests in one transaction (the web app's group commit).

    One answer per request, in order; a bad address is its own :class:`AddressError` and stops
    none of the others. The requests apply one after another, so each sees the ones before it.
    """
    from sqlalchemy.exc import IntegrityError

    checked: list[tuple[SubscribeRequest, dict | AddressError]] = []
    for request in requests:
        try:
            checked.append((request, audience._validated(
                address=request.address, name=request.name, language=request.language, topics=request.topics,
                cadence=request.cadence, status="pending",
            )))
        except AddressError as exc:
            checked.append((request, exc))
    for attempt in (1, 2):
        try:
            valid = [(request, values) for request, values in checked if not isinstance(values, AddressError)]
            with audience._engine.begin() as conn:
                answers = iter(_request_batch(
                    conn, audience, valid, now=now, source=source[:200], since=confirmations_since, limit=max_confirmations,
                    site_since=site_since or now, site_limit=site_max_confirmations,
                ) if valid else [])
            return [values if isinstance(values, AddressError) else next(answers) for _, values in checked]
        except IntegrityError:
            if attempt == 2:  # another process inserted the same address: the retry sees it
                raise
    return []


# Built once: a subscribe POST is the web app's busiest write, and building statements was most of its cost.
_FIND_ADDRESSES = select(subscribers.c.address, subscribers.c.id, subscribers.c.status).where(
    subscribers.c.address.in_(bindparam("p_addresses", expanding=True))
)
_NEW_SUBSCRIBERS = insert(subscribers).returning(subscribers.c.id, subscribers.c.address, sort_by_parameter_order=True)
_TOUCH_UNCONFIRMED = (
    update(subscribers)
    .where(subscribers.c.id == bindparam("p_id"), subscribers.c.status != "confirmed")
    .values(updated_at=bindparam("p_now"))
)
_SUPPRESSED = select(suppressions.c.address, suppressions.c.reason).where(
    suppressions.c.address.in_(bindparam("p_addresses", expanding=True))
)
_EMAILED = select(func.count()).select_from(subscription_requests).where(subscription_requests.c.emailed.is_(True))
_SENT_TO_MAILBOXES = (
    select(subscription_requests.c.mailbox, func.count())
    .where(
        subscription_requests.c.emailed.is_(True),
        subscription_requests.c.mailbox.in_(bindparam("p_mailboxes", expanding=True)),
        subscription_requests.c.created_at >= bindparam("p_since"),
    )
    .group_by(subscription_requests.c.mailbox)
)
_SENT_BY_SITE = _EMAILED.where(subscription_requests.c.created_at >= bindparam("p_site_since"))
_NEW_REQUESTS = insert(subscription_requests).returning(subscription_requests.c.id, sort_by_parameter_order=True)


def _request_batch(
    conn, audience: Audience, items: Sequence[tuple[SubscribeRequest, dict]], *, now: datetime, source: str,
    since: datetime, limit: int, site_since: datetime, site_limit: int | None,
) -> list[Requested | None]:
    """Apply ``items`` in order, each seeing the ones before it, with a fixed number of statements for the batch.

    Every kind of address takes the same statements (bar the insert of a new one, where a known
    address gets an update), so the time of the answer does not tell a confirmed address from an
    unknown one.
    """
    addresses = list(dict.fromkeys(values["address"] for _, values in items))
    known = {row.address: (row.id, row.status) for row in conn.execute(_FIND_ADDRESSES, {"p_addresses": addresses})}
    fresh = {values["address"]: values for _, values in items if values["address"] not in known}
    if fresh:
        # No re-suppression look-up: the one below finds a hashed suppression and sends no
        # link, so such a pending row can never be confirmed.
        created = conn.execute(_NEW_SUBSCRIBERS, [
            {"address": a, "name": v["name"], "language": v["language"], "status": "pending", "cadence": v["cadence"],
             "created_at": now, "updated_at": now}
            for a, v in fresh.items()
        ]).all()
        known.update({row.address: (row.id, "pending") for row in created})
        topics = [{"subscriber_id": known[a][0], "topic": t} for a, v in fresh.items() for t in v["topics"]]
        if topics:
            conn.execute(insert(subscriber_topics), topics)
    touched = [{"p_id": known[a][0], "p_now": now} for a in addresses if a not in fresh]
    if touched:
        conn.execute(_TOUCH_UNCONFIRMED, touched)
    hashes = {a: audience._hashes(a) for a in addresses}
    reasons: dict[str, set[str]] = {}
    for row in conn.execute(_SUPPRESSED, {"p_addresses": [h for a in addresses for h in (a, *hashes[a])]}):
        reasons.setdefault(row.address, set()).add(row.reason)
    boxes = {a: mailbox(a) for a in addresses}
    sent = dict(conn.execute(_SENT_TO_MAILBOXES, {"p_mailboxes": sorted(set(boxes.values())), "p_since": since}).all())
    site_sent = conn.execute(_SENT_BY_SITE, {"p_site_since": site_since}).scalar_one()

    decisions: list[tuple[SubscribeRequest, dict, int, bool, bool]] = []
    for request, values in items:
        clean = values["address"]
        subscriber_id, status = known[clean]
        confirmed = status == "confirmed"
        box = boxes[clean]
        found = set().union(*(reasons.get(h, set()) for h in (clean, *hashes[clean])))
        emailed = (
            not confirmed
            and request.may_confirm
            and found <= {"unsubscribed"}
            and sent.get(box, 0) < limit
            and (site_limit is None or site_sent < site_limit)
        )
        if emailed:
            sent[box] = sent.get(box, 0) + 1
            site_sent += 1
        decisions.append((request, values, subscriber_id, confirmed, emailed))
    request_ids = conn.execute(_NEW_REQUESTS, [
        {"subscriber_id": subscriber_id, "mailbox": boxes[values["address"]], "name": values["name"],
         "language": values["language"], "cadence": values["cadence"], "topics": ";".join(values["topics"]),
         "evidence": request.evidence, "emailed": emailed, "created_at": now, "closed_at": now if confirmed else None}
        for request, values, subscriber_id, confirmed, emailed in decisions
    ]).scalars().all()

    events, answers, queued = [], [], []
    for (request, values, subscriber_id, _, emailed), request_id in zip(decisions, request_ids, strict=True):
        event = {"subscriber_id": subscriber_id, "address": values["address"], "at": now, "source": source}
        events.append({**event, "kind": "requested", "detail": request.evidence})
        if not emailed:
            answers.append(None)
            continue
        events.append({**event, "kind": "confirmation-sent", "detail": json.dumps({"request": request_id})})
        requested = Requested(subscriber_id=subscriber_id, request_id=request_id)
        answers.append(requested)
        if request.confirmation is not None:
            key, channel, payload = request.confirmation(requested)
            queued.append({"release": key, "channel": channel, "recipient": values["address"], "subscriber_id": None,
                           "payload": payload, "planned_at": now, "updated_at": now})
    conn.execute(insert(consent_events), events)
    if queued:
        queue_deliveries(conn, queued)
    return answers


def check_request(*, audience: Audience, request_id: int) -> None:
    """Raise :class:`TokenError` unless the subscription request can still be confirmed."""
    with audience._engine.connect() as conn:
        _open_request(conn, request_id)


def _open_request(conn, request_id: int):  # noqa: ANN202
    request = conn.execute(select(subscription_requests).where(subscription_requests.c.id == request_id)).mappings().first()
    if request is None:
        raise TokenError(N_("the request it confirms no longer exists (erased, or not confirmed in time)"))
    if request["closed_at"] is not None:
        raise TokenError(N_("it has been used already, or a newer change of the subscription replaced it"))
    return request


def confirm_request(*, audience: Audience, request_id: int, now: datetime, source: str, evidence: str) -> Subscriber:
    """Confirm the subscription request a link was sent for, with that request's choices.

    The ``confirmed`` consent event records the choices and the request. Raises
    :class:`TokenError` when the request is unknown, expired away, already used, or voided by a
    later change of the subscriber's status.
    """
    with audience._engine.begin() as conn:
        request = _open_request(conn, request_id)
        subscriber_id = request["subscriber_id"]
        address = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).scalar_one()
        topics = tuple(t for t in request["topics"].split(";") if t)
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(
                status="confirmed", name=request["name"], cadence=request["cadence"], language=request["language"],
                updated_at=now, confirmed_at=now,
            )
        )
        conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id == subscriber_id))
        if topics:
            conn.execute(insert(subscriber_topics), [{"subscriber_id": subscriber_id, "topic": t} for t in topics])
        _close_requests(conn, subscriber_id, now)
        choices = {"request": request_id, "topics": list(topics), "cadence": request["cadence"], "language": request["language"], "name": request["name"]}
        Audience._event(conn, subscriber_id, address, "confirmed", now, source, _with(evidence, choices=choices))
        # Confirming again lifts only the unsubscribe; bounces and complaints stay suppressed.
        conn.execute(delete(suppressions).where(and_(suppressions.c.address == address, suppressions.c.reason == "unsubscribed")))
    result = audience.get(subscriber_id=subscriber_id)
    assert result is not None
    return result


def erase(*, settings: Settings, address: str | None = None, subscriber_id: int | None = None) -> bool:
    """The right to erasure, for the CLI, the data page and every other caller.

    The address goes from the subscriber row, its topics, requests and consent events, the
    media list (and its preview opens), the ledger (rows stay for the counts, their recipient
    replaced by a keyed hash, any server answer that quoted it rewritten, rows still waiting to go marked ``suppressed``), and the outbox and
    preview files under ``var/`` (found by name and by content). A bounce or a complaint stays
    suppressed as the keyed hash only, so the address is never mailed again; an unsubscribe
    suppression goes. On SQLite the freed bytes are overwritten (``secure_delete``) and the WAL
    is checkpointed and truncated; on PostgreSQL the touched tables are vacuumed. Returns
    ``False`` when nothing was held about the address.
    """
    if (address is None) == (subscriber_id is None):
        raise TypeError("give exactly one of address or subscriber_id")
    audience = Audience.from_settings(settings)
    engine = audience._engine
    with engine.begin() as conn:
        if subscriber_id is not None:
            address = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).scalar()
            if address is None:
                return False
        assert address is not None
        clean = normalise_address(address)
        hashed = address_hash(key=settings.signing_keys()[0], address=clean)
        ids = conn.execute(select(subscribers.c.id).where(subscribers.c.address == clean)).scalars().all()
        reasons = conn.execute(select(suppressions).where(suppressions.c.address == clean)).mappings().all()
        touched = bool(ids or reasons)
        if ids:
            conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id.in_(ids)))
            conn.execute(delete(subscription_requests).where(subscription_requests.c.subscriber_id.in_(ids)))
            conn.execute(delete(consent_events).where(consent_events.c.subscriber_id.in_(ids)))
            conn.execute(delete(subscribers).where(subscribers.c.id.in_(ids)))
        touched |= conn.execute(delete(consent_events).where(consent_events.c.address == clean)).rowcount > 0
        touched |= _forget_journalist(conn, clean)  # the media list too: "everywhere" means everywhere
        conn.execute(delete(suppressions).where(suppressions.c.address == clean))
        for kept in reasons:
            if kept["reason"] != "unsubscribed":
                conn.execute(
                    dialect_insert(conn, suppressions)
                    .values(address=hashed, reason=kept["reason"], detail=_scrub(kept["detail"], clean, hashed), created_at=kept["created_at"])
                    .on_conflict_do_nothing()
                )
        rows = conn.execute(select(deliveries.c.id, deliveries.c.state).where(deliveries.c.recipient == clean)).all()
        touched |= bool(rows)
        waiting = [r.id for r in rows if r.state in ("planned", "claimed", "deferred", "digest")]
        if rows:
            conn.execute(
                update(deliveries).where(deliveries.c.recipient == clean).values(recipient=hashed, subscriber_id=None, payload=None)
            )
        if waiting:
            conn.execute(update(deliveries).where(deliveries.c.id.in_(waiting)).values(state="suppressed", response="recipient erased"))
        pattern = f"%{clean}%"
        for table in (deliveries, delivery_conflicts):
            for hit in conn.execute(select(table.c.id, table.c.response).where(func.lower(table.c.response).like(pattern))).all():
                conn.execute(update(table).where(table.c.id == hit.id).values(response=_scrub(hit.response, clean, hashed)))
    touched |= _erase_files(settings, clean)
    _forget_freed_bytes(engine)
    log.info("erased an address (now %s)", hashed)
    return touched


def _scrub(text_value: str, address: str, replacement: str) -> str:
    return re.sub(re.escape(address), replacement, text_value, flags=re.IGNORECASE)


def _erase_files(settings: Settings, address: str) -> bool:
    """Delete outbox and preview files that name or contain ``address``; True when any went."""
    needle = address.encode().lower()
    # The outbox names a file after its recipient with unsafe characters replaced.
    safe_name = re.sub(r"[^A-Za-z0-9._@+-]", "_", address).lower()
    removed = False
    for folder in (settings.path("var") / "outbox", settings.path("var") / "preview"):
        if not folder.exists():
            continue
        for path in folder.rglob("*"):
            if not path.is_file():
                continue
            lowered = path.name.lower()
            try:
                hit = address in lowered or safe_name in lowered or needle in path.read_bytes().lower()
            except OSError:
                continue
            if hit:
                path.unlink(missing_ok=True)
                removed = True
    return removed


def _forget_freed_bytes(engine) -> None:
    if engine.dialect.name == "sqlite":
        # secure_delete zeroed the freed cells in the pages; old page images still sit in the WAL.
        # Outside any transaction (SQLAlchemy would begin one), on the driver's own connection.
        raw = engine.raw_connection()
        try:
            busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.close()
        if busy:
            log.warning("the database WAL could not be truncated after an erasure (a reader held it); it will be on the next checkpoint")
        return
    # PostgreSQL keeps dead tuples until VACUUM, which cannot run inside a transaction.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(
            "VACUUM subscribers, subscriber_topics, subscription_requests, consent_events, suppressions, deliveries, delivery_conflicts, "
            "journalists, preview_opens"
        )


def expire_pending(*, audience: Audience, before: datetime) -> int:
    """Delete subscriptions still unconfirmed whose last request is older than ``before``; returns how many.

    They never consented, so nothing of them is kept (their events and requests go too). Old
    requests of other subscribers (names typed by anyone, never confirmed) go as well.
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
            conn.execute(delete(subscription_requests).where(subscription_requests.c.subscriber_id.in_(ids)))
            conn.execute(delete(subscribers).where(subscribers.c.id.in_(ids)))
            conn.execute(delete(consent_events).where(consent_events.c.address.in_([r.address for r in chunk])))
        conn.execute(delete(subscription_requests).where(subscription_requests.c.created_at < before))
        return len(rows)


# --------------------------------------------------------------------------- the media list (journalists)

JOURNALIST_COLUMNS = ("address", "name", "outlet", "beats", "language", "country")
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
#: The action of a journalist's one-click opt-out link.
JOURNALIST_UNSUBSCRIBE = "journalist-unsubscribe"


@dataclass(frozen=True)
class Journalist:
    id: int
    address: str
    name: str
    outlet: str
    beats: tuple[str, ...]  # tag slugs; none means every release
    language: str
    country: str


def preview_action(slug: str) -> str:
    """The token action of a journalist's preview link of release ``slug``: a link opens one release only."""
    return f"preview-{slug}"


def preview_url(*, settings: Settings, journalist_id: int, slug: str) -> str:
    """A journalist's personal link to the embargoed preview of release ``slug``."""
    token = sign_token(settings=settings, action=preview_action(slug), subscriber_id=journalist_id)
    return f"{settings.site.base_url}/preview/{slug}?token={token}"


def journalist_unsubscribe_url(*, settings: Settings, journalist_id: int) -> str:
    """The one-click opt-out link of a journalist (RFC 8058; never expires)."""
    token = sign_token(settings=settings, action=JOURNALIST_UNSUBSCRIBE, subscriber_id=journalist_id)
    return f"{settings.site.base_url}/journalists/unsubscribe?token={token}"


class MediaList:
    """Journalists in the Pressroom database; the suppression list is the subscribers' one."""

    def __init__(self, *, audience: Audience) -> None:
        self._audience = audience
        self._engine = audience._engine

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaList:
        return cls(audience=Audience.from_settings(settings))

    def _validated(self, record: dict) -> dict:
        address = normalise_address(record.get("address") or "")
        language = (record.get("language") or self._audience._language).strip()
        if not LANGUAGE_RE.match(language):
            raise AddressError(f"{address}: language {language!r} is not a language tag such as en or pt-BR")
        country = (record.get("country") or "").strip()
        if country and not _COUNTRY_RE.match(country):
            raise AddressError(f"{address}: country {country!r} is not a two-letter code such as BE or DE")
        country = country.upper()
        try:
            name = clean_name(record.get("name") or "")
            outlet = clean_name(record.get("outlet") or "", links=True)
        except AddressError as exc:
            raise AddressError(f"{address}: {exc.message}", hint=exc.hint) from None
        beats = record.get("beats") or ()
        beats = re.split(r"[;|]", beats) if isinstance(beats, str) else beats
        return {"address": address, "name": name, "outlet": outlet, "beats": ";".join(_topics(beats)),
                "language": language, "country": country}

    def add(self, *, address: str, now: datetime, name: str = "", outlet: str = "", beats: Iterable[str] = (),
            language: str | None = None, country: str = "") -> Journalist:
        """Add one journalist; :class:`AddressError` if the address is invalid or already on the list."""
        row = self._validated({"address": address, "name": name, "outlet": outlet, "beats": list(beats),
                               "language": language, "country": country})
        with self._engine.begin() as conn:
            if conn.execute(select(journalists.c.id).where(journalists.c.address == row["address"])).first():
                raise AddressError(f"{row['address']} is already on the media list",
                                   hint="use `pressroom journalists list` to see it, or remove it first")
            conn.execute(insert(journalists), [{**row, "created_at": now, "updated_at": now}])
        found = self.get(address=row["address"])
        assert found is not None
        return found

    def import_csv(self, *, file: Path | TextIO, now: datetime) -> ImportReport:
        """Bulk-import a CSV (header: address, and optionally name, outlet, beats, language, country).

        ``beats`` are separated by ``;`` or ``|``. Bad rows and duplicates are reported with their
        line number and skipped, as for subscribers; the good rows are imported.
        """
        report = ImportReport()
        with _csv_file(file) as handle:
            reader = _csv_reader(handle, JOURNALIST_COLUMNS)
            with self._engine.begin() as conn:
                known = set(conn.execute(select(journalists.c.address)).scalars())
                seen: set[str] = set()
                fresh = []
                for record in reader:
                    line = reader.line_num
                    try:
                        if None in record:
                            raise AddressError("the row has more fields than the header")
                        row = self._validated(record)
                    except AddressError as exc:
                        report.problems.append((line, exc.message))
                        continue
                    if row["address"] in known or row["address"] in seen:
                        report.duplicates += 1
                        where = "appears earlier in the file" if row["address"] in seen else "is already on the media list"
                        report.problems.append((line, f"{row['address']} {where}"))
                        continue
                    seen.add(row["address"])
                    fresh.append({**row, "created_at": now, "updated_at": now})
                if fresh:
                    conn.execute(insert(journalists), fresh)
                report.added = len(fresh)
        return report

    def export_csv(self, *, file: TextIO) -> int:
        """Write every journalist as CSV (the import format); returns the number of rows."""
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(JOURNALIST_COLUMNS)
        count = 0
        for journalist in self.list():
            writer.writerow([journalist.address, journalist.name, journalist.outlet, ";".join(journalist.beats),
                             journalist.language, journalist.country])
            count += 1
        return count

    def list(self) -> list[Journalist]:
        """Every journalist, in address order."""
        with self._engine.connect() as conn:
            return [_journalist(row) for row in conn.execute(select(journalists).order_by(journalists.c.address)).mappings()]

    def reachable(self) -> list[Journalist]:
        """Every journalist whose address is not on the suppression list (opted out, bounced, complained)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(journalists).where(~exists().where(suppressions.c.address == journalists.c.address))
                .order_by(journalists.c.address)
            ).mappings()
            return [_journalist(row) for row in rows]

    def get(self, *, address: str | None = None, journalist_id: int | None = None) -> Journalist | None:
        """One journalist by address or id, or ``None``."""
        where = journalists.c.id == journalist_id if address is None else journalists.c.address == normalise_address(address)
        with self._engine.connect() as conn:
            row = conn.execute(select(journalists).where(where)).mappings().first()
        return None if row is None else _journalist(row)

    def remove(self, *, address: str) -> bool:
        """Take a journalist off the media list (their preview opens go too); False if not on it."""
        with self._engine.begin() as conn:
            return _forget_journalist(conn, normalise_address(address))

    def opt_out(self, *, journalist_id: int, now: datetime, source: str) -> Journalist | None:
        """The journalist's one-click opt-out: their address joins the shared suppression list."""
        journalist = self.get(journalist_id=journalist_id)
        if journalist is not None:
            # Not "unsubscribed": that reason lets transactional rows through, and a journalist email has no subscriber.
            self._audience.suppress(address=journalist.address, reason="opted-out", now=now, detail=source)
        return journalist

    def record_open(self, *, journalist_id: int, release: str, now: datetime) -> None:
        """A journalist opened the embargoed preview of ``release``."""
        with self._engine.begin() as conn:
            conn.execute(insert(preview_opens), [{"journalist_id": journalist_id, "release": release, "at": now}])

    def opens(self, *, release: str) -> list[tuple[Journalist, int, datetime, datetime]]:
        """(journalist, opens, first, last) of everyone who opened the preview of ``release``."""
        with self._engine.connect() as conn:
            at = preview_opens.c.at
            rows = conn.execute(
                select(journalists, func.count().label("opens"), type_coerce(func.min(at), at.type).label("first"),
                       type_coerce(func.max(at), at.type).label("last"))
                .select_from(preview_opens.join(journalists, journalists.c.id == preview_opens.c.journalist_id))
                .where(preview_opens.c.release == release)
                .group_by(*journalists.c)
                .order_by(journalists.c.address)
            ).mappings().all()
        return [(_journalist(row), int(row["opens"]), row["first"], row["last"]) for row in rows]


def _forget_journalist(conn, address: str) -> bool:
    ids = select(journalists.c.id).where(journalists.c.address == address).scalar_subquery()
    conn.execute(delete(preview_opens).where(preview_opens.c.journalist_id.in_(ids)))
    return conn.execute(delete(journalists).where(journalists.c.address == address)).rowcount > 0


def _journalist(row) -> Journalist:
    return Journalist(id=row["id"], address=row["address"], name=row["name"], outlet=row["outlet"],
                      beats=tuple(b for b in row["beats"].split(";") if b), language=row["language"], country=row["country"])
