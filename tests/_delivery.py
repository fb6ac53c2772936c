"""Helpers for the delivery tests: a database on SQLite and PostgreSQL, and SMTP servers on loopback.

Imported by tests/test_audience.py, test_ledger.py and test_delivery_*.py as tests._delivery.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

PG_ADMIN = os.environ.get("PRESSROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this test session; dropped afterwards."""
    import psycopg

    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    name = f"pressroom_delivery_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"PostgreSQL at {admin} is not reachable: {exc}; start it (see .ci/run)")
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from pressroom.db import dispose_all

    dispose_all()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pressroom.db'}"
        return
    url = request.getfixturevalue("pg_server_url")
    from sqlalchemy import text

    from pressroom.db import engine_for_url

    engine = engine_for_url(url)
    with engine.begin() as conn:
        conn.execute(text(
            "TRUNCATE subscribers, subscriber_topics, consent_events, suppressions, publications, plans, deliveries RESTART IDENTITY CASCADE"
        ))
    yield url


class Received:
    """What an SMTP test server accepted: (recipient, Message-ID) pairs, counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.messages: list[bytes] = []

    def add(self, recipients: list[str], data: bytes, *, keep: bool = False) -> None:
        message_id = message_from_bytes(data).get("Message-ID", "")
        with self.lock:
            for rcpt in recipients:
                self.counts[(rcpt.lower(), message_id)] += 1
            if keep:
                self.messages.append(data)

    def by_recipient(self) -> Counter[str]:
        with self.lock:
            result: Counter[str] = Counter()
            for (rcpt, _mid), n in self.counts.items():
                result[rcpt] += n
            return result
