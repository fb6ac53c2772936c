"""Consent evidence as a chain: every event sealed with a keyed hash of itself and of the seal before it.

``consent_events`` is append-only in the database (an UPDATE is refused; a DELETE is refused
outside an erasure's transaction). That stops accidents, not someone who owns the database, so
each row also carries ``seal = HMAC(key, seal of the row before || the row)`` and the head table
keeps the last id and seal under a MAC of its own. Without the secret key nobody can write a
row, remove one or empty the table so that :func:`verify_chain` still agrees.

Only an erasure (and the expiry of requests nobody confirmed, which is the erasure of people
who never consented) removes events: :func:`remove_events` deletes them and appends an
``erased`` event listing the ids and seals it removed, never whose they were, so the chain still
verifies across the gap and says that something was removed, when and why.

The key is the site's secret (``settings.signing_keys()``): the current key seals, and
``key_id`` says which key sealed a row, so rows sealed before a rotation verify while the old
key is listed in ``[web] previous_secret_keys``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from pressroom.db import (
    consent_chain,
    consent_erasure_grant,
    consent_events,
    subscribers,
)

__all__ = ["ChainReport", "append_events", "remove_events", "seal_legacy", "verify_chain"]

_HEAD = 1
_CHUNK = 10_000
_TRIGGERS = ("consent_events_append_only", "consent_events_delete_guard")


@functools.lru_cache(maxsize=16)
def key_id(key: bytes) -> str:
    """A short name for a key that gives nothing of it away."""
    return hashlib.sha256(b"pressroom-key-id\x00" + key).hexdigest()[:12]


@functools.lru_cache(maxsize=16)
def _chain_key(key: bytes) -> bytes:
    return hashlib.sha256(b"pressroom-consent\x00" + key).digest()


def _canonical(row: Any) -> bytes:
    at = row["at"].astimezone(UTC).isoformat(timespec="microseconds")[:26]  # YYYY-MM-DDTHH:MM:SS.ffffff
    fields = [row["id"], row["subscriber_id"], row["address"], row["kind"], at, row["source"], row["detail"]]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def _seal(key: bytes, previous: str, row: Any) -> str:
    return hmac.new(_chain_key(key), previous.encode() + b"\n" + _canonical(row), hashlib.sha256).hexdigest()[:32]


def _head_mac(key: bytes, last_id: int, last_seal: str) -> str:
    return hmac.new(_chain_key(key), f"head\n{last_id}:{last_seal}".encode(), hashlib.sha256).hexdigest()[:32]


def _signing_key(keys: Sequence[bytes]) -> bytes:
    # An Audience made without settings (tests, scripts) still chains its events; they verify
    # only against the empty key, which no site uses, so doctor names them.
    return keys[0] if keys else b""


# --------------------------------------------------------------------------- writing

# Built once: every subscribe POST's batch appends to the chain.
_HEAD_ROW = select(consent_chain.c.last_id, consent_chain.c.last_seal).where(consent_chain.c.id == _HEAD)
_HEAD_LOCKED = _HEAD_ROW.with_for_update()
_SET_HEAD = update(consent_chain).where(consent_chain.c.id == _HEAD).values(
    last_id=bindparam("p_last_id"), last_seal=bindparam("p_last_seal"), key_id=bindparam("p_key_id"), mac=bindparam("p_mac"),
)
_INSERT_EVENTS = insert(consent_events)


def _locked_head(conn: Connection) -> tuple[int, str | None]:
    """(last id, last seal) of the chain, locked for this transaction; made when missing."""
    row = conn.execute(_HEAD_LOCKED if conn.dialect.name == "postgresql" else _HEAD_ROW).first()
    if row is not None:
        return int(row.last_id), row.last_seal
    # A fresh database, or a head someone removed: rows already there stay where they are, and
    # the next seal does not follow theirs, which verify_chain reports.
    last = conn.execute(select(func.coalesce(func.max(consent_events.c.id), 0))).scalar_one()
    conn.execute(insert(consent_chain).values(id=_HEAD, last_id=last, last_seal=None))
    return int(last), None


def _set_head(conn: Connection, key: bytes, last_id: int, last_seal: str) -> None:
    conn.execute(_SET_HEAD, {"p_last_id": last_id, "p_last_seal": last_seal, "p_key_id": key_id(key),
                             "p_mac": _head_mac(key, last_id, last_seal)})


def _sealed(key: bytes, previous: str, rows: list[dict]) -> tuple[list[dict], str]:
    kid = key_id(key)
    out = []
    for row in rows:
        previous = _seal(key, previous, row)
        out.append({**row, "seal": previous, "key_id": kid})
    return out, previous


def append_events(conn: Connection, keys: Sequence[bytes], events: Sequence[dict]) -> None:
    """Append ``events`` (subscriber_id, address, kind, at, source, detail) to the chain, in this order, in ``conn``'s transaction."""
    if not events:
        return
    key = _signing_key(keys)
    last_id, last_seal = _locked_head(conn)
    if last_seal is None:
        last_seal = _seal_unsealed(conn, key, last_id)
    rows = [{**event, "source": event["source"][:200], "id": last_id + number} for number, event in enumerate(events, 1)]
    sealed, last_seal = _sealed(key, last_seal, rows)
    conn.execute(_INSERT_EVENTS, sealed)
    _set_head(conn, key, sealed[-1]["id"], last_seal)


def _seal_unsealed(conn: Connection, key: bytes, through: int) -> str:
    """Seal the rows written before the chain existed (ids up to ``through``), once; returns the last seal."""
    rows = [dict(row) for row in conn.execute(
        select(consent_events).where(consent_events.c.id <= through).order_by(consent_events.c.id)
    ).mappings()]
    if any(row["seal"] is not None for row in rows):
        # The head went missing while sealed rows remain: start afresh after them, which shows.
        _set_head(conn, key, through, "")
        return ""
    sealed, last = _sealed(key, "", [{k: v for k, v in row.items() if k not in ("seal", "key_id")} for row in rows])
    if sealed:
        # UPDATE is refused on evidence: the rows go back in as they were, with their seals.
        with _erasing(conn):
            conn.execute(delete(consent_events).where(consent_events.c.id <= through))
        for start in range(0, len(sealed), _CHUNK):
            conn.execute(insert(consent_events), sealed[start:start + _CHUNK])
    _set_head(conn, key, through, last)
    return last


def seal_legacy(engine: Engine, keys: Sequence[bytes]) -> None:
    """Seal the events of a database upgraded from before the chain (a no-op, one query, once done)."""
    with engine.connect() as conn:
        head = conn.execute(select(consent_chain.c.last_seal).where(consent_chain.c.id == _HEAD)).first()
    if head is not None and head.last_seal is None:
        with engine.begin() as conn:
            last_id, last_seal = _locked_head(conn)
            if last_seal is None:
                _seal_unsealed(conn, _signing_key(keys), last_id)


class _erasing:
    """Inside an erasure's transaction: the grant the database's delete guard looks for."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.token = conn, secrets.token_hex(8)

    def __enter__(self) -> None:
        self.conn.execute(insert(consent_erasure_grant).values(token=self.token))

    def __exit__(self, *exc: object) -> None:
        self.conn.execute(delete(consent_erasure_grant).where(consent_erasure_grant.c.token == self.token))


def remove_events(conn: Connection, keys: Sequence[bytes], *, ids: Sequence[int], now: datetime, reason: str) -> int:
    """Delete the events ``ids`` (an erasure) and append an ``erased`` event that lists their ids and seals; returns how many."""
    removed: list[list] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start:start + _CHUNK])
        removed += [[row.id, row.seal] for row in conn.execute(
            select(consent_events.c.id, consent_events.c.seal).where(consent_events.c.id.in_(chunk))
        )]
        with _erasing(conn):
            conn.execute(delete(consent_events).where(consent_events.c.id.in_(chunk)))
    if removed:
        detail = json.dumps({"removed": sorted(removed), "reason": reason}, separators=(",", ":"))
        append_events(conn, keys, [{"subscriber_id": None, "address": "", "kind": "erased", "at": now, "source": reason,
                                    "detail": detail}])
    return len(removed)


# --------------------------------------------------------------------------- checking


@dataclass
class ChainReport:
    """What :func:`verify_chain` found: ``problems`` is empty when the evidence is whole."""

    events: int = 0
    erased: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(problem)


def _rows(conn: Connection) -> Iterator[dict]:
    last = -1
    while True:
        chunk = conn.execute(
            select(consent_events).where(consent_events.c.id > last).order_by(consent_events.c.id).limit(_CHUNK)
        ).mappings().all()
        yield from (dict(row) for row in chunk)
        if len(chunk) < _CHUNK:
            return
        last = chunk[-1]["id"]


def _erased_seals(conn: Connection) -> dict[int, str]:
    seals: dict[int, str] = {}
    for (detail,) in conn.execute(select(consent_events.c.detail).where(consent_events.c.kind == "erased")):
        try:
            seals.update({int(i): str(s) for i, s in json.loads(detail)["removed"]})
        except (ValueError, KeyError, TypeError):
            continue  # its own seal fails if it was tampered with
    return seals


def _missing_triggers(conn: Connection) -> list[str]:
    if conn.dialect.name == "postgresql":
        query = text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'consent_events'::regclass AND tgenabled <> 'D'")
    else:
        query = text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'consent_events'")
    present = set(conn.execute(query).scalars())
    return [name for name in _TRIGGERS if name not in present]


def _walk(conn: Connection, keys: dict[str, bytes], report: ChainReport) -> tuple[int, str]:
    erased = _erased_seals(conn)
    report.erased = len(erased)
    previous, last_id = "", 0
    pending = sorted(erased)
    for row in _rows(conn):
        while pending and pending[0] < row["id"]:
            last_id, previous = pending[0], erased[pending.pop(0)]
        report.events += 1
        key = keys.get(row["key_id"] or "")
        if row["seal"] is None:
            report.add(f"event {row['id']} is not sealed")
        elif key is None:
            report.add(f"event {row['id']} was sealed with a key this site no longer has (key {row['key_id']})")
        elif not hmac.compare_digest(row["seal"], _seal(key, previous, row)):
            report.add(f"event {row['id']} ({row['kind']}, {row['at']:%Y-%m-%d %H:%M}) does not follow the one before it: "
                       "an event before it was deleted, or this one was written or changed outside Pressroom")
        previous, last_id = row["seal"] or "", row["id"]
    if pending:
        last_id, previous = pending[-1], erased[pending[-1]]
    return last_id, previous


def verify_chain(engine: Engine, keys: Sequence[bytes]) -> ChainReport:
    """Check the whole chain with ``keys`` (current and previous): every seal, the head, the guards, and that every subscriber has evidence."""
    by_id = {key_id(key): key for key in keys}
    report = ChainReport()
    # One snapshot for the rows, the head and the subscribers, so a write meanwhile is not taken for a gap.
    snapshot = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**snapshot) as conn:
        for name in _missing_triggers(conn):
            report.add(f"the database trigger {name} is missing: consent events can be changed or deleted unnoticed from now on")
        last_id, last_seal = _walk(conn, by_id, report)
        head = conn.execute(select(consent_chain).where(consent_chain.c.id == _HEAD)).mappings().first()
        bare = conn.execute(
            select(func.count()).select_from(subscribers)
            .where(~select(consent_events.c.id).where(consent_events.c.subscriber_id == subscribers.c.id).exists())
        ).scalar_one()
    _check_head(head, by_id, last_id, last_seal, report)
    if bare:
        report.add(f"{bare} subscriber(s) have no consent event at all: their evidence was deleted")
    return report


def _check_head(head: Any, keys: dict[str, bytes], last_id: int, last_seal: str, report: ChainReport) -> None:
    if head is None:
        if last_id:
            report.add("the head of the consent chain is missing: the last events may have been deleted")
        return
    if head["last_seal"] is None:
        if last_id > head["last_id"] or last_seal:
            report.add("events were written after the upgrade but the chain was never sealed")
        return
    key = keys.get(head["key_id"] or "")
    if key is None or not hmac.compare_digest(head["mac"] or "", _head_mac(key, head["last_id"], head["last_seal"])):
        report.add("the head of the consent chain was not written by Pressroom (or with a key this site no longer has)")
    elif (head["last_id"], head["last_seal"]) != (last_id, last_seal):
        report.add(f"the chain ends at event {last_id} but its head says {head['last_id']}: "
                   "the last events were deleted, the table emptied, or events added outside Pressroom")
