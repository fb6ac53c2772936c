"""The consent chain, erasure down to the bytes of the database files, and migration 0006 on a database with data.

On SQLite and PostgreSQL. What an attacker who owns the database can do (delete, insert, empty
the table, drop a trigger) is done here in SQL, and the verification must say so.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from tests._delivery import PG_ADMIN
from tests.conftest import NOW, Project

from pressroom.audience import Audience, MediaList, erase, expire_pending, request_subscription, verify_chain
from pressroom.db import engine_for_url, queue_deliveries
from pressroom.settings import Settings

ZELDA = "zelda.erasure@victim.example"


def _verify(settings: Settings) -> list[str]:
    return verify_chain(engine_for_url(settings.db_url), settings.signing_keys()).problems


def _everyday(audience: Audience) -> None:
    a = audience.add(address="a@example.org", now=NOW, source="cli", evidence="signed form")
    audience.add(address="b@example.org", now=NOW, source="cli")
    audience.set_preferences(subscriber_id=a.id, now=NOW, source="web", cadence="weekly")
    audience.unsubscribe(subscriber_id=a.id, now=NOW, source="web")
    request_subscription(audience=audience, address="c@example.org", now=NOW, source="web", evidence="{}",
                         confirmations_since=NOW - timedelta(days=1), max_confirmations=3)


def _sql(settings: Settings, statement: str, **params: object) -> None:
    with engine_for_url(settings.db_url).begin() as conn:
        conn.execute(text(statement), params)


def _as_owner(settings: Settings, statement: str) -> None:
    """What someone who owns the database can do: the guard's grant, then any DELETE."""
    _sql(settings, "INSERT INTO consent_erasure_grant (token) VALUES ('owner')")
    try:
        _sql(settings, statement)
    finally:
        _sql(settings, "DELETE FROM consent_erasure_grant")


def test_the_chain_holds_through_everyday_changes_an_erasure_and_an_expiry(settings: Settings) -> None:
    audience = Audience.from_settings(settings)
    _everyday(audience)
    request_subscription(audience=audience, address="late@example.org", now=NOW - timedelta(days=9), source="web", evidence="{}",
                         confirmations_since=NOW - timedelta(days=10), max_confirmations=3)
    assert erase(settings=settings, address="b@example.org")
    assert expire_pending(audience=audience, before=NOW - timedelta(days=7)) == 1
    report = verify_chain(engine_for_url(settings.db_url), settings.signing_keys())
    assert report.ok, report.problems
    assert report.erased >= 2
    with engine_for_url(settings.db_url).connect() as conn:
        erased = conn.execute(text("SELECT address, source, detail FROM consent_events WHERE kind = 'erased'")).all()
    assert {row.source for row in erased} == {"erasure", "expired: never confirmed"}
    assert all(row.address == "" and "example.org" not in row.detail for row in erased)  # that it happened, not whose


def test_a_delete_is_refused_and_one_done_around_the_guard_is_found(settings: Settings) -> None:
    _everyday(Audience.from_settings(settings))
    with pytest.raises(DBAPIError, match="removed only by an erasure"):
        _sql(settings, "DELETE FROM consent_events WHERE kind = 'preferences'")
    assert _verify(settings) == []
    _as_owner(settings, "DELETE FROM consent_events WHERE kind = 'preferences'")
    [problem] = _verify(settings)
    assert "does not follow the one before" in problem


def test_deleting_the_last_event_and_resetting_the_head_is_found(settings: Settings) -> None:
    _everyday(Audience.from_settings(settings))
    with engine_for_url(settings.db_url).connect() as conn:
        last, before = conn.execute(text("SELECT id, seal FROM consent_events ORDER BY id DESC LIMIT 2")).all()
    _as_owner(settings, f"DELETE FROM consent_events WHERE id = {last.id}")
    _sql(settings, "UPDATE consent_chain SET last_id = :id, last_seal = :seal", id=before.id, seal=before.seal)
    assert any("head of the consent chain was not written by Pressroom" in p for p in _verify(settings))


def test_a_forged_insert_is_found(settings: Settings) -> None:
    _everyday(Audience.from_settings(settings))
    _sql(settings, "INSERT INTO consent_events (id, subscriber_id, address, kind, at, source, detail, seal, key_id) "
                   "SELECT MAX(id) + 1, NULL, 'x@example.org', 'confirmed', MAX(at), 'web', '{}', MAX(seal), MAX(key_id) FROM consent_events")
    problems = _verify(settings)
    assert any("does not follow the one before" in p for p in problems)
    assert any("the chain ends at event" in p for p in problems)


def test_emptying_the_table_is_found(settings: Settings) -> None:
    _everyday(Audience.from_settings(settings))
    if settings.db_url.startswith("postgresql"):
        _sql(settings, "TRUNCATE consent_events")
    else:
        _as_owner(settings, "DELETE FROM consent_events")
    problems = _verify(settings)
    assert any("the chain ends at event 0" in p for p in problems)
    assert any("have no consent event at all" in p for p in problems)


def test_a_dropped_trigger_is_found_and_so_is_what_it_let_through(settings: Settings) -> None:
    _everyday(Audience.from_settings(settings))
    on = " ON consent_events" if settings.db_url.startswith("postgresql") else ""
    _sql(settings, f"DROP TRIGGER consent_events_append_only{on}")
    try:
        _sql(settings, "UPDATE consent_events SET detail = 'rewritten' WHERE kind = 'subscribed'")
        problems = _verify(settings)
        assert any("trigger consent_events_append_only is missing" in p for p in problems)
        assert any("written or changed outside Pressroom" in p for p in problems)
    finally:
        if on:  # the PostgreSQL database is shared by the session's tests: put the guard back
            _sql(settings, "CREATE TRIGGER consent_events_append_only BEFORE UPDATE ON consent_events "
                           "FOR EACH ROW EXECUTE FUNCTION pressroom_consent_append_only()")


def test_doctor_reports_the_chain(settings: Settings) -> None:
    from pressroom.doctor import check_consent

    _everyday(Audience.from_settings(settings))
    [fine] = check_consent(settings)
    assert fine.ok and "sealed in one chain" in fine.message
    _as_owner(settings, "DELETE FROM consent_events WHERE kind = 'unsubscribed'")
    [broken] = check_consent(settings)
    assert not broken.ok and "does not follow the one before" in broken.message


# --------------------------------------------------------------------------- erasure, down to the files


def _hold_everything_about_zelda(settings: Settings) -> None:
    audience = Audience.from_settings(settings)
    zelda = audience.add(address=ZELDA, name="Zelda Erasure", now=NOW, source="cli", evidence=f"form of {ZELDA}")
    audience.set_preferences(subscriber_id=zelda.id, now=NOW, source="web", topics=["energy"])
    audience.suppress(address=ZELDA, reason="hard-bounce", now=NOW, detail=f"550 <{ZELDA}> unknown")
    MediaList(audience=audience).add(address=ZELDA, name="Zelda Erasure", now=NOW)
    for n in range(300):  # neighbours, so the pages stay in use after the erasure
        audience.add(address=f"reader{n}@example.org", now=NOW, source="cli")
    with engine_for_url(settings.db_url).begin() as conn:
        queue_deliveries(conn, [{"release": "news", "channel": "email", "recipient": address, "subscriber_id": None,
                                 "payload": json.dumps({"to": address}), "planned_at": NOW, "updated_at": NOW}
                                for address in (ZELDA, *(f"reader{n}@example.org" for n in range(300)))])


def _files_holding(files: list[Path], needle: bytes) -> list[str]:
    held = []
    for path in files:
        try:
            if needle in path.read_bytes():
                held.append(str(path))
        except OSError:
            continue
    return held


def test_erasure_leaves_the_address_in_no_file_of_a_sqlite_database(project: Project, tmp_path: Path) -> None:
    settings = project.settings(PRESSROOM_DATABASE_URL=f"sqlite:///{tmp_path / 'erase.db'}")
    _hold_everything_about_zelda(settings)
    def files() -> list[Path]:
        return [p for p in tmp_path.iterdir() if p.name.startswith("erase.db")]

    assert _files_holding(files(), ZELDA.encode()), "the test must see the address before the erasure"
    assert erase(settings=settings, address=ZELDA)
    assert _files_holding(files(), ZELDA.encode()) == []
    assert _files_holding(files(), b"Zelda Erasure") == []
    assert _verify(settings) == []


def test_erasure_leaves_the_address_in_no_file_of_a_postgresql_database(project: Project, pg_server_url: str) -> None:
    settings = project.settings(PRESSROOM_DATABASE_URL=pg_server_url)
    _hold_everything_about_zelda(settings)
    engine = engine_for_url(pg_server_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")  # as autovacuum would: statistics sampled while the address is there
        conn.exec_driver_sql("CHECKPOINT")
        folder = Path(conn.exec_driver_sql("SHOW data_directory").scalar_one()) / "base" / str(
            conn.exec_driver_sql("SELECT oid FROM pg_database WHERE datname = current_database()").scalar_one())
    def files() -> list[Path]:  # every table, index, TOAST and catalog file of the database
        return [p for p in folder.iterdir() if p.is_file()]

    assert _files_holding(files(), ZELDA.encode()), "the test must see the address before the erasure"
    assert erase(settings=settings, address=ZELDA)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CHECKPOINT")
    assert _files_holding(files(), ZELDA.encode()) == []
    assert _files_holding(files(), b"Zelda Erasure") == []
    assert Audience.from_settings(settings).is_suppressed(address=ZELDA)  # the bounce stays, as a keyed hash


# --------------------------------------------------------------------------- migration 0006 on a database with data


def _database_at_0005(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from pressroom.db import MIGRATIONS

    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO subscribers (id, address, name, language, status, cadence, created_at, updated_at) "
                          "VALUES (1, 'old@example.org', 'Old', 'en', 'confirmed', 'per-release', :at, :at)"), {"at": NOW})
        for kind in ("requested", "confirmed", "preferences"):
            conn.execute(text("INSERT INTO consent_events (subscriber_id, address, kind, at, source, detail) "
                              "VALUES (1, 'old@example.org', :kind, :at, 'web', '{}')"), {"kind": kind, "at": NOW})
        conn.execute(text("INSERT INTO journalists (id, address, language, created_at, updated_at) "
                          "VALUES (1, 'desk@paper.example', 'en', :at, :at)"), {"at": NOW})
        conn.execute(text("INSERT INTO preview_opens (release, journalist_id, at) VALUES ('news', 1, :at)"), {"at": NOW})
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        _database_at_0005(url)
        yield url
        return
    import psycopg

    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    name = f"pressroom_people_upgrade_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        _database_at_0005(url)
        yield url
    finally:
        from pressroom.db import dispose_all

        dispose_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0006_upgrades_a_database_with_data_and_seals_its_evidence(project: Project, old_database: str) -> None:
    settings = project.settings(PRESSROOM_DATABASE_URL=old_database)
    audience = Audience.from_settings(settings)  # migrates, then seals the three old events
    assert [e.kind for e in audience.events(address="old@example.org")] == ["requested", "confirmed", "preferences"]
    assert _verify(settings) == []
    audience.unsubscribe(subscriber_id=1, now=NOW, source="web")  # the chain goes on from the sealed rows
    media = MediaList(audience=audience)
    assert [(j.address, n) for j, n, _, _ in media.opens(release="news")] == [("desk@paper.example", 1)]
    assert _verify(settings) == []
    assert erase(settings=settings, address="old@example.org")
    assert _verify(settings) == []
    with engine_for_url(old_database).connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM consent_events WHERE address = 'old@example.org'")).scalar_one() == 0
