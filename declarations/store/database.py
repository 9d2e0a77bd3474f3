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
from sqlalchemy.exc import DisconnectionError, InvalidRequestError


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def comma_joined(values: list[str]) -> str | None:
    """``values`` as one comma-separated text for the server to split (``string_to_array``), or None where
    that would be ambiguous (a value holding a comma, an empty one): psycopg dumps a list of 1,000 strings
    element by element in Python, most of a statement's CPU when it carries a DmfA's workers."""
    joined = ",".join(values)
    if not values or "" in values or joined.count(",") != len(values) - 1:
        return None
    return joined


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
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError(str(error)) from error
            raise
        if alive is False:  # SQLAlchemy 2.0.0's do_ping answers False for a dead connection instead of raising
            raise DisconnectionError("the pooled connection did not answer its ping")


def employer_lock_key(noss: str) -> int:
    """The PostgreSQL advisory lock key of one employer (also taken inside facts.receive's statement)."""
    return zlib.crc32(f"employer:{noss}".encode())


_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def lock_employer(connection: Connection, noss: str) -> None:
    """Serialise writers for one employer until the transaction ends."""
    if is_sqlite(connection):
        return  # BEGIN IMMEDIATE already holds the database's write lock
    connection.execute(_LOCK, {"k": employer_lock_key(noss)})


# --- the hot statements of the real-time path, on the driver's cursor ---------------------------------------

class DriverStatement:
    """A PostgreSQL statement the real-time pipeline runs for every declaration, run on the driver's cursor.

    ``Connection.execute`` costs some 0.1-0.2 ms of CPU per statement on top of psycopg's own work (its
    execution context, parameter processing, and a result whose metadata it builds from
    ``cursor.description``, for which psycopg makes one ``Column`` object per column, at every execution).
    Three statements per declaration make that a tenth of a Dimona's CPU. Here the statement is compiled
    once, for the connection's dialect (the same SQL text ``execute`` would send, so psycopg's prepared
    statements are shared), and sent on a cursor of the connection's own DBAPI connection, through
    ``Connection._cursor_execute``: in the connection's transaction, with its ``before_cursor_execute`` and
    ``after_cursor_execute`` events (statements stay countable), its echo logging, and its error handling
    (a driver error becomes SQLAlchemy's, and a lost connection is invalidated, as with ``execute``). Rows
    come back as plain tuples, in the statement's column order.

    Only for statements whose parameters need no processing by SQLAlchemy (no bind processors, no
    expanding IN lists): checked when compiled.
    """

    def __init__(self, statement):
        self.statement = statement
        self._compiled: tuple | None = None  # (dialect, SQL text, the values of the statement's own literals)

    def _for(self, dialect) -> tuple:
        compiled = self._compiled
        if compiled is None or compiled[0] is not dialect:
            form = self.statement.compile(dialect=dialect)
            if form.positional or form._bind_processors or form.literal_execute_params or form.post_compile_params:
                raise TypeError("a DriverStatement takes named parameters that SQLAlchemy does not process")
            # The literals of a Core statement (e.g. worker_type = 'STU') are anonymous parameters with a value.
            literals = {form.bind_names[bind]: bind.effective_value
                        for bind in set(form.binds.values()) if not bind.required}
            compiled = self._compiled = (dialect, form.string, literals)
        return compiled

    def rows(self, connection: Connection, parameters: dict) -> list[tuple]:
        """The statement's rows (tuples)."""
        return self._run(connection, parameters, True)

    def execute(self, connection: Connection, parameters: dict) -> None:
        """Run a statement that returns no rows."""
        self._run(connection, parameters, False)

    def _run(self, connection: Connection, parameters: dict, fetch: bool):
        _dialect, sql, literals = self._for(connection.dialect)
        if literals:
            parameters = {**literals, **parameters}
        if not connection.invalidated and not connection.in_transaction():
            # execute() would begin one; the pipeline always runs in engine.begin()'s.
            raise InvalidRequestError("a DriverStatement runs inside the connection's active transaction")
        # On an invalidated connection this raises what execute() would (PendingRollbackError).
        dbapi_connection = connection.connection
        try:
            cursor = dbapi_connection.cursor()
        except Exception as error:  # noqa: BLE001 - wrapped (a lost connection invalidated) and re-raised
            connection._handle_dbapi_exception(error, sql, parameters, None, None)
            raise  # not reached: _handle_dbapi_exception always raises
        try:
            connection._cursor_execute(cursor, sql, parameters)
            if not fetch:
                return None
            try:
                return cursor.fetchall()
            except BaseException as error:  # noqa: BLE001 - handled (wrapped, re-raised) as execute() does
                connection._handle_dbapi_exception(error, sql, parameters, cursor, None)
        finally:
            cursor.close()
