"""Engines for SQLite (embedded, the default) and PostgreSQL (production).

Writers are serialised per employer: on PostgreSQL with a transaction-scoped
advisory lock (several engine processes or machines may share the database),
on SQLite by taking the write lock at BEGIN (``BEGIN IMMEDIATE``), so two
declarations can never both pass an overlap or "current DmfA" check.
"""

from __future__ import annotations

import zlib

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine


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
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def employer_lock_key(noss: str) -> int:
    """The PostgreSQL advisory lock key of one employer (also taken inside facts.new_keyed_declaration)."""
    return zlib.crc32(f"employer:{noss}".encode())


_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def lock_employer(connection: Connection, noss: str) -> None:
    """Serialise writers for one employer until the transaction ends."""
    if is_sqlite(connection):
        return  # BEGIN IMMEDIATE already holds the database's write lock
    connection.execute(_LOCK, {"k": employer_lock_key(noss)})
