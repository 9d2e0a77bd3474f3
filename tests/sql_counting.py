"""Counting the SQL statements a piece of the engine sends, as the driver receives them (the
statement-count tests of tests/integration/)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event


@contextmanager
def counted(engine):
    """The statements sent on ``engine`` meanwhile, in order (``before_cursor_execute``: also those run on
    the driver's cursor by store/database.DriverStatement)."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
