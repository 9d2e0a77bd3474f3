"""Engines for SQLite (embedded, the default) and PostgreSQL (production).

Writers are serialised per employer: on PostgreSQL with a transaction-scoped
advisory lock (several engine processes or machines may share the database),
on SQLite by taking the write lock at BEGIN (``BEGIN IMMEDIATE``), so two
declarations can never both pass an overlap or "current DmfA" check.
"""

from __future__ import annotations

import time
import zlib

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def insert_ignoring_duplicates(connection: Connection, table):
    """INSERT ... ON CONFLICT DO NOTHING, in the connection's dialect (SQLite or PostgreSQL)."""
    dialect_insert = sqlite_insert if is_sqlite(connection) else pg_insert
    return dialect_insert(table).on_conflict_do_nothing()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=5, max_overflow=10)
    _ping_when_idle(engine)
    return engine


# A pooled connection idle for longer than this is checked (one round trip) before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection that has been idle for a while.

    A ping on every checkout costs one round trip per transaction (a seventh of an accepted Dimona's, and as
    much CPU as a statement). A connection used moments ago is known to be alive; one that sat in the pool
    may have been cut (server restart, idle timeout), so it is pinged first, and a dead one is replaced
    (DisconnectionError makes the pool retry the checkout with a new connection). A connection that dies
    within the idle window fails its statement as it would without any ping; SQLAlchemy then drops the
    pool's other connections made before it.
    """

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection, record):
        record.info["last_used"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        if record is not None:
            record.info["last_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("last_used", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError(str(error)) from error
            raise


def employer_lock_key(noss: str) -> int:
    """The PostgreSQL advisory lock key of one employer (also taken inside facts.receive's statement)."""
    return zlib.crc32(f"employer:{noss}".encode())


_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def lock_employer(connection: Connection, noss: str) -> None:
    """Serialise writers for one employer until the transaction ends."""
    if is_sqlite(connection):
        return  # BEGIN IMMEDIATE already holds the database's write lock
    connection.execute(_LOCK, {"k": employer_lock_key(noss)})
