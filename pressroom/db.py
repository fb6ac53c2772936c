"""The database: one SQLAlchemy engine per URL, the schema, and migrations applied on connect.

SQLite (a file under ``var/``) is the embedded default; PostgreSQL is chosen by URL
(``postgresql+psycopg://user@host/db``). The same code runs on both. Alembic migrations ship
inside the package (``pressroom/migrations``) and are applied automatically, once, when a
process first connects; concurrent first connections are serialised by the database itself
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock).

Only ``db.py``, ``audience/`` and ``ledger.py`` import SQLAlchemy; nothing here leaks out.
"""

from __future__ import annotations

import ast
import functools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.types import TypeDecorator

from pressroom.errors import ConfigError, DatabaseUnavailable
from pressroom.settings import Settings

__all__ = ["engine_for", "engine_for_url"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant: the advisory lock id that serialises migrations on PostgreSQL.
_MIGRATION_LOCK = 7_204_117_001


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; every datetime must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("language", String(35), nullable=False),
    Column("status", String(16), nullable=False),
    Column("cadence", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("unsubscribed_at", UTCDateTime),
    Index("ix_subscribers_status_cadence", "status", "cadence"),
    sqlite_autoincrement=True,  # ids are never reused: signed links name subscribers by id
)

subscriber_topics = Table(
    "subscriber_topics",
    metadata,
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("topic", String(100), nullable=False),
    PrimaryKeyConstraint("subscriber_id", "topic"),
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, nullable=True, index=True),
    Column("address", String(320), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("source", String(200), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    # The chain (pressroom.audience.consent): a keyed hash of this row and the seal of the one
    # before, and which key made it. NULL only on rows written before the chain, until sealed.
    Column("seal", String(64), nullable=True),
    Column("key_id", String(16), nullable=True),
)

# The head of the consent chain: one row, the last event's id and seal under a keyed MAC, so a
# deleted last event or an emptied table shows.
consent_chain = Table(
    "consent_chain",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_id", Id, nullable=False),
    Column("last_seal", String(64), nullable=True),  # NULL: rows from before the chain wait to be sealed
    Column("key_id", String(16), nullable=True),
    Column("mac", String(64), nullable=True),
)

# Present only inside an erasure's transaction: the database refuses to delete a consent event otherwise.
consent_erasure_grant = Table(
    "consent_erasure_grant",
    metadata,
    Column("token", String(32), primary_key=True),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

publications = Table(
    "publications",
    metadata,
    Column("slug", String(200), primary_key=True),
    Column("release_date", UTCDateTime, nullable=False),
    Column("first_public_at", UTCDateTime, nullable=False),
    # What the release said when last published (Release.text_digest) and how many correction notes it had.
    Column("text_digest", String(32), nullable=True),
    Column("corrections", Integer, nullable=False, server_default="0"),
)

plans = Table(
    "plans",
    metadata,
    Column("release", String(200), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("planned_at", UTCDateTime, nullable=False),
    Column("recipients", Integer, nullable=False),
    PrimaryKeyConstraint("release", "channel"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("release", String(200), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subscriber_id", Id, nullable=True),
    Column("bundle", String(200), nullable=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("response", Text, nullable=False, server_default=""),
    Column("claimed_by", String(64), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("planned_at", UTCDateTime, nullable=False),
    Column("sending_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("run_id", String(64), nullable=True),  # the run that last claimed the row: per-run reports
    Column("payload", Text, nullable=True),  # what a transactional email renders from (JSON)
    # Since when the server has been unavailable for this row (down, refusing the session, rate
    # limiting): such waits spend no attempt and end in ``expired`` after [email] give_up_after.
    Column("waiting_since", UTCDateTime, nullable=True),
    UniqueConstraint("release", "channel", "recipient", name="uq_deliveries_release_channel_recipient"),
    Index("ix_deliveries_queue", "release", "channel", "state"),
    Index("ix_deliveries_bundle", "bundle"),
    Index("ix_deliveries_channel_state", "channel", "state"),
    Index("ix_deliveries_recipient", "recipient"),  # every send to one address (deliveries find, erasure)
)

# An outcome a sender reported for a row it no longer owned (its lease was taken over, an
# operator requeued it): kept, never dropped, so the report can show it.
delivery_conflicts = Table(
    "delivery_conflicts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, nullable=False, index=True),
    Column("worker", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("response", Text, nullable=False, server_default=""),
    Column("at", UTCDateTime, nullable=False),
)

# A step that changed a delivery's fate on purpose (the operator resent it, a channel asked the
# far end after a crash), with the state and answer it had before: append-only, so a resend
# stays visible after the row settles as sent.
delivery_history = Table(
    "delivery_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, nullable=False, index=True),
    Column("event", String(32), nullable=False),  # resent, asked, retried
    Column("state", String(16), nullable=False),  # the state before
    Column("response", Text, nullable=False, server_default=""),  # the answer before
    Column("at", UTCDateTime, nullable=False),
)

# One row per subscribe-form request: what that request asked for, so that confirming its link
# applies exactly those choices. A row is closed when its link is used or the subscriber's
# status changes, so an old link can never confirm (or re-subscribe) again.
subscription_requests = Table(
    "subscription_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("mailbox", String(320), nullable=False),  # the address without case, +tag or trailing dot
    Column("name", String(200), nullable=False, server_default=""),
    Column("language", String(35), nullable=False),
    Column("cadence", String(16), nullable=False),
    Column("topics", Text, nullable=False, server_default=""),  # slugs joined by ";"
    Column("evidence", Text, nullable=False, server_default=""),
    Column("emailed", Boolean, nullable=False),  # whether a confirmation email went out for it
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Index("ix_subscription_requests_mailbox_created", "mailbox", "created_at"),
    Index("ix_subscription_requests_created", "created_at"),
    sqlite_autoincrement=True,  # ids are never reused: confirmation links name requests by id
)


# The media list: journalists, contacted on legitimate interest (no double opt-in). Kept apart
# from subscribers; an opt-out goes to the shared ``suppressions``. ``beats`` are tag slugs
# joined by ";" (none: every release).
journalists = Table(
    "journalists",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("outlet", String(200), nullable=False, server_default=""),
    Column("beats", Text, nullable=False, server_default=""),
    Column("language", String(35), nullable=False),
    Column("country", String(2), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,  # ids are never reused: preview links name journalists by id
)

# Spam complaints (ARF reports), one per email complained about: the complaint rate per release.
# No address here: the delivery row names the recipient, and erasing them there is enough.
complaints = Table(
    "complaints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, nullable=False, unique=True),
    Column("feedback_type", String(32), nullable=False),
    Column("reporter", String(200), nullable=False, server_default=""),
    Column("at", UTCDateTime, nullable=False),
)

# Who opened an embargoed preview, and when (``pressroom journalists report SLUG``).
preview_opens = Table(
    "preview_opens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("release", String(200), nullable=False),
    Column("journalist_id", Id, ForeignKey("journalists.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_preview_opens_release", "release"),
    Index("ix_preview_opens_link_at", "journalist_id", "release", "at"),  # one open per link per few minutes
)

# Aggregate link counts (pressroom.reach): per link of a release, channel and language, per hour,
# how many people and how many machines followed it. Nothing here names or describes a person.
link_clicks = Table(
    "link_clicks",
    metadata,
    Column("release", String(200), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("language", String(35), nullable=False),
    Column("link_key", String(32), nullable=False),  # a digest of the link: a key of bounded length
    Column("link", Text, nullable=False),
    Column("hour", UTCDateTime, nullable=False),
    Column("people", Integer, nullable=False, server_default="0"),
    Column("machines", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("release", "channel", "language", "link_key", "hour"),
)

# A social post's counts as its network reported them, read back at 1 h, 24 h and 7 days.
post_counts = Table(
    "post_counts",
    metadata,
    Column("release", String(200), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("age", String(8), nullable=False),  # "1h", "24h", "7d"
    Column("likes", Integer, nullable=False),
    Column("reposts", Integer, nullable=False),
    Column("replies", Integer, nullable=False),
    Column("read_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("release", "channel", "age"),
)


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT construct, which has ``on_conflict_do_nothing()`` on both backends."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def queue_deliveries(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Queue deliveries that carry what they render from (release, channel, recipient, subscriber_id,
    payload, planned_at, updated_at); a key queued already is left alone. Returns how many were new."""
    statement = _QUEUE_DELIVERY.get(conn.dialect.name)
    if statement is None:  # built once per backend: every subscribe POST queues its confirmation here
        statement = _QUEUE_DELIVERY[conn.dialect.name] = (
            dialect_insert(conn, deliveries).values(state="planned").on_conflict_do_nothing().returning(deliveries.c.id)
        )
    # Counted from RETURNING: the rowcount of a many-row execute is -1 on PostgreSQL (psycopg).
    return len(conn.execute(statement, rows).all())


_QUEUE_DELIVERY: dict[str, Any] = {}


def driver_value(conn: Connection, type_: Any, value: Any) -> Any:
    """``value`` as the driver takes it for a column of ``type_`` (a datetime: SQLite's text form), for :func:`prepared`."""
    key = (conn.dialect.name, type_)
    process = _BIND.get(key, _NO_PROCESSOR)
    if process is _NO_PROCESSOR:
        process = _BIND[key] = type_.bind_processor(conn.dialect)
    return value if process is None else process(value)


def prepared(conn: Connection, statement: Any, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> CursorResult:
    """Run ``statement`` through the driver itself: compiled once per backend (and per length of its
    list parameters), then executed with ``params`` as given, one mapping or many (executemany).

    For the few statements every window of a send runs, SQLAlchemy's processing of each execution
    and each row cost more than the statements themselves. Values must be the driver's already:
    datetimes through :func:`driver_value`; a list (``b_ids``) fills an ``IN``.
    """
    one = isinstance(params, Mapping)
    rows = [params] if one else list(params)
    lists = tuple(sorted((name, len(value)) for name, value in rows[0].items() if isinstance(value, list)))
    sql, order, defaults = _template(conn, statement, rows[0], lists)
    flat = [_flatten(row, defaults) for row in rows] if lists else [{**defaults, **row} for row in rows]
    driver_rows = [tuple(row[name] for name in order) for row in flat] if order is not None else flat
    return conn.exec_driver_sql(sql, driver_rows[0] if one else driver_rows)


def _template(conn: Connection, statement: Any, first: Mapping[str, Any],
              lists: tuple[tuple[str, int], ...]) -> tuple[str, Any, dict[str, Any]]:
    """(the driver's SQL, its parameter order when positional, the statement's own values) of ``statement``."""
    key = (conn.dialect.name, id(statement), lists)
    template = _PREPARED.get(key)
    if template is None:
        state = statement.compile(dialect=conn.dialect).construct_expanded_state(dict(first))
        given = {f"{name}_{i}" for name, length in lists for i in range(1, length + 1)} | set(first)
        defaults = {name: value for name, value in state.parameters.items() if name not in given}
        template = _PREPARED[key] = (state.statement, state.positiontup, defaults)
    return template


def _flatten(row: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    flat = {**defaults}
    for name, value in row.items():
        if isinstance(value, list):
            flat.update((f"{name}_{i}", item) for i, item in enumerate(value, 1))
        else:
            flat[name] = value
    return flat


_BIND: dict[tuple[str, Any], Any] = {}
_NO_PROCESSOR = object()
_PREPARED: dict[tuple[str, int, tuple[tuple[str, int], ...]], tuple[str, Any, dict[str, Any]]] = {}

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine_for(settings: Settings) -> Engine:
    """The migrated engine for ``settings.db_url`` (one per URL per process)."""
    return engine_for_url(settings.db_url)


def engine_for_url(url: str) -> Engine:
    """Connect to ``url``, apply pending migrations, and cache the engine for this process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            migrate(engine)
            _engines[url] = engine
        return engine


def dispose_all() -> None:
    """Close every cached engine (tests dropping their database; a process after fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _unavailable(engine: Engine, exc: BaseException) -> DatabaseUnavailable:
    where = engine.url.render_as_string(hide_password=True)
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnavailable(f"database {where}: {detail}")


def _map_errors(engine: Engine) -> None:
    # The database's edge (as httpx maps httpcore's errors): a lost connection, a server that is
    # down or a lock held past the timeout becomes a TransientError that Prefect retries and the
    # web app answers with 503. Everything else (a constraint, a bug) stays what it is.
    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> Any:
        original = context.sqlalchemy_exception or context.original_exception
        if context.is_disconnect or isinstance(original, (OperationalError, InterfaceError)):
            return _unavailable(engine, original)
        return None


def _create(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"database_url {url!r} is not a database URL",
            hint="use sqlite:///path/to/pressroom.db or postgresql+psycopg://user@host/dbname",
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        _sqlite_transactions(engine)
        _map_errors(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_size=10, max_overflow=20, connect_args={"connect_timeout": 10})
        _ping_when_idle(engine)
        _map_errors(engine)
        return engine
    raise ConfigError(
        f"database_url {url!r}: {backend} is not supported",
        hint="use sqlite:///... (default) or postgresql+psycopg://...",
    )


#: A pooled connection idle this long is pinged before it is handed out (the server may have restarted
#: or dropped it meanwhile); one in steady use is not: a sender checks one out for every window's commit.
IDLE_BEFORE_PING = 1.0


def _ping_when_idle(engine: Engine) -> None:
    # SQLAlchemy's pessimistic disconnect handling (a DisconnectionError at checkout makes the pool
    # open another connection), as pool_pre_ping does, minus its round trip on every checkout.
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < IDLE_BEFORE_PING:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"the pooled connection is gone: {exc}") from exc


READS_ONLY = "pressroom_reads_only"  # execution option of a connection that only reads, a statement at a time


def _sqlite_transactions(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and would let two writers read the
    # same queue rows; every transaction here takes the write lock up front instead
    # (SQLAlchemy's documented recipe), so a claim is atomic across threads and processes.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")  # erased data is overwritten in the file, not only unlinked
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A connection that only reads (READS_ONLY), one statement at a time, needs no transaction:
        # each statement reads its own snapshot, neither waiting for the write lock nor holding writers back.
        if not conn.get_execution_options().get(READS_ONLY):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op (one query) when it already is.

    That check needs no Alembic: importing it (and Mako, Pygments) would cost every sender
    process about 10 MB for nothing. Alembic decides whenever the shortcut is not sure.
    """
    head = _head()
    if head is not None and _current_revision(engine) == head:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
    except DatabaseUnavailable:
        raise
    except DBAPIError as exc:
        raise _unavailable(engine, exc) from None
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


@functools.cache
def _head() -> str | None:
    """The newest revision, read from the migration files (``revision`` and ``down_revision``);
    None unless exactly one revision is no other's parent and every file names its own."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) else None)
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value is not None:
                found[target.id] = ast.literal_eval(node.value)
        if not isinstance(found.get("revision"), str):
            return None
        revisions.add(found["revision"])
        down = found.get("down_revision")
        parents.update(down if isinstance(down, (tuple, list)) else [down] if down else [])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _current_revision(engine: Engine) -> str | None:
    """The revision the database is at (Alembic's own table); None when it cannot tell (a new database)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except (DBAPIError, DatabaseUnavailable):
        return None
    return rows[0] if len(rows) == 1 else None
