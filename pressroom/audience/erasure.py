"""The right to erasure: one function, for the CLI, the data page and every other caller.

Deleting rows is not enough: a database keeps the bytes of a deleted row until the space is
reused. On SQLite ``secure_delete`` (set on every connection by :mod:`pressroom.db`) zeroes
them in table and index pages alike, and the WAL is checkpointed and truncated. PostgreSQL has no
such thing: VACUUM frees the space of a dead row but leaves its bytes in the page, in the table
and in every index that held it (measured: after DELETE and VACUUM the address was still in the
unique index, and in the heap page when it had been the last row written there). So every table
an erasure changed is rewritten (``VACUUM FULL``: new files, indexes rebuilt, the old files
emptied at commit) and analysed again. What the WAL and backups keep, and for how long, is in
docs/operations.md.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.engine import Connection, Engine

from pressroom.audience.addresses import address_hash, normalise_address
from pressroom.audience.consent import remove_events
from pressroom.audience.media import forget_journalist
from pressroom.audience.subscribers import Audience
from pressroom.db import (
    consent_events,
    deliveries,
    delivery_conflicts,
    delivery_history,
    dialect_insert,
    journalists,
    preview_opens,
    subscriber_topics,
    subscribers,
    subscription_requests,
    suppressions,
)
from pressroom.settings import Settings

__all__ = ["erase"]

log = logging.getLogger("pressroom.audience")


def erase(*, settings: Settings, address: str | None = None, subscriber_id: int | None = None) -> bool:
    """Forget an address everywhere; ``False`` when nothing was held about it.

    The address goes from the subscriber row, its topics, requests and consent events (the chain
    records that an erasure removed some, never whose), the media list (and its preview opens),
    the ledger (rows stay for the counts, their recipient replaced by a keyed hash, any server
    answer that quoted it rewritten, rows still waiting to go marked ``suppressed``), and the
    outbox and preview files under ``var/`` (found by name and by content). A bounce or a
    complaint stays suppressed as the keyed hash only, so the address is never mailed again; an
    unsubscribe suppression goes. Then the freed bytes are overwritten (see the module's doc).
    """
    if (address is None) == (subscriber_id is None):
        raise TypeError("give exactly one of address or subscriber_id")
    audience = Audience.from_settings(settings)
    with audience.engine.begin() as conn:
        if subscriber_id is not None:
            address = conn.execute(select(subscribers.c.address).where(subscribers.c.id == subscriber_id)).scalar()
            if address is None:
                return False
        assert address is not None
        clean = normalise_address(address)
        changed = _erase_rows(conn, audience, clean, address_hash(key=settings.signing_keys()[0], address=clean))
    changed_files = _erase_files(settings, clean)
    if changed:
        _forget_freed_bytes(audience.engine, changed)
    log.info("erased an address")
    return bool(changed) or changed_files


def _erase_rows(conn: Connection, audience: Audience, clean: str, hashed: str) -> list[Table]:
    """Every row about ``clean`` gone or rewritten in ``conn``'s transaction; the tables that changed."""
    changed: list[Table] = []
    ids = conn.execute(select(subscribers.c.id).where(subscribers.c.address == clean)).scalars().all()
    if ids:
        conn.execute(delete(subscriber_topics).where(subscriber_topics.c.subscriber_id.in_(ids)))
        conn.execute(delete(subscription_requests).where(subscription_requests.c.subscriber_id.in_(ids)))
        conn.execute(delete(subscribers).where(subscribers.c.id.in_(ids)))
        changed += [subscribers, subscriber_topics, subscription_requests]
    events = conn.execute(
        select(consent_events.c.id).where(or_(consent_events.c.address == clean, consent_events.c.subscriber_id.in_(ids)))
    ).scalars().all()
    if remove_events(conn, audience.keys, ids=events, now=datetime.now(UTC), reason="erasure"):
        changed.append(consent_events)
    if forget_journalist(conn, clean):  # the media list too: "everywhere" means everywhere
        changed += [journalists, preview_opens]
    if _erase_suppression(conn, clean, hashed):
        changed.append(suppressions)
    changed += _erase_ledger(conn, clean, hashed)
    return changed


def _erase_suppression(conn: Connection, clean: str, hashed: str) -> bool:
    kept = conn.execute(select(suppressions).where(suppressions.c.address == clean)).mappings().all()
    if not kept:
        return False
    conn.execute(delete(suppressions).where(suppressions.c.address == clean))
    for row in kept:
        if row["reason"] != "unsubscribed":
            conn.execute(
                dialect_insert(conn, suppressions)
                .values(address=hashed, reason=row["reason"], detail=_scrub(row["detail"], clean, hashed), created_at=row["created_at"])
                .on_conflict_do_nothing()
            )
    return True


def _erase_ledger(conn: Connection, clean: str, hashed: str) -> list[Table]:
    changed: list[Table] = []
    rows = conn.execute(select(deliveries.c.id, deliveries.c.state).where(deliveries.c.recipient == clean)).all()
    if rows:
        changed.append(deliveries)
        conn.execute(update(deliveries).where(deliveries.c.recipient == clean).values(recipient=hashed, subscriber_id=None, payload=None))
        waiting = [r.id for r in rows if r.state in ("planned", "claimed", "deferred", "digest")]
        if waiting:
            conn.execute(update(deliveries).where(deliveries.c.id.in_(waiting)).values(state="suppressed", response="recipient erased"))
    for table in (deliveries, delivery_conflicts, delivery_history):
        for hit in conn.execute(select(table.c.id, table.c.response).where(func.lower(table.c.response).like(f"%{clean}%"))).all():
            conn.execute(update(table).where(table.c.id == hit.id).values(response=_scrub(hit.response, clean, hashed)))
            changed.append(table)
    return list(dict.fromkeys(changed))


def _scrub(text_value: str, address: str, replacement: str) -> str:
    return re.sub(re.escape(address), replacement, text_value, flags=re.IGNORECASE)


def _erase_files(settings: Settings, address: str) -> bool:
    """Delete outbox and preview files that name or contain ``address``; True when any went."""
    needle = address.encode().lower()
    # The outbox names a file after its recipient with unsafe characters replaced.
    safe_name = re.sub(r"[^A-Za-z0-9._@+-]", "_", address).lower()
    removed = False
    for folder in (settings.path("var") / "outbox", settings.path("var") / "preview"):
        for path in folder.rglob("*") if folder.exists() else ():
            if path.is_file() and _mentions(path, address, safe_name, needle):
                path.unlink(missing_ok=True)
                removed = True
    return removed


def _mentions(path: Path, address: str, safe_name: str, needle: bytes) -> bool:
    lowered = path.name.lower()
    try:
        return address in lowered or safe_name in lowered or needle in path.read_bytes().lower()
    except OSError:
        return False


def _forget_freed_bytes(engine: Engine, tables: list[Table]) -> None:
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
    # VACUUM cannot run inside a transaction. FULL rewrites each table and its indexes into new
    # files; ANALYZE replaces statistics that were sampled while the address was there.
    names = ", ".join(dict.fromkeys(table.name for table in tables))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (FULL, ANALYZE) {names}")
