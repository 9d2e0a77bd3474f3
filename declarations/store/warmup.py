"""A new connection made ready for declarations' transactions before the first one needs it.

A connection's first declaration pays for what the later ones find ready: SQLAlchemy compiling the
statements, SQLite reading the schema, a new PostgreSQL backend loading the catalog entries of the tables
and indexes it touches. In a batch on worker processes (services/batch_items) each worker opens its
connection after the fork, and its first transaction runs in the batch's chain, where every other
declaration waits for it: 20-50 ms more per worker at the start of every batch (bench/README.md,
"Session 7"). ``warm_up`` does that work in advance, while the batch's first pass still runs.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import false, literal_column, select, union_all
from sqlalchemy.engine import Connection

from declarations.domain.model import Quarter
from declarations.store import tables as t
from declarations.store.database import is_sqlite
from declarations.store.institutions import anyone_subscribed
from declarations.store.views import StoredView, sender_view

# What a declaration's transaction writes: planned once here, each table with its indexes is in the
# connection's caches (PostgreSQL's relcache; SQLite reads its whole schema at the first statement).
_WRITTEN = (t.declaration, t.message_key, t.person, t.employment_period, t.dmfa, t.dmfa_person,
            t.dmfa_worker_record, t.dmfa_occupation, t.social_risk, t.batch, t.batch_item)


def warm_up(connection: Connection) -> None:
    """Run, reading nothing that exists and writing nothing, the statements of a declaration's transaction
    whose first run on a connection costs most; the transaction is rolled back."""
    nobody = "-"  # no employer, worker or sender is named so (and one item: the workers' list goes as text)
    day = dt.date(2000, 1, 1)
    view = StoredView(connection, t.PROD)
    with connection.begin() as transaction:
        view.current_dmfa(nobody, Quarter(2000, 1))
        view.uncovered(nobody, [(nobody, day, day)])  # M010's statement
        sender_view(connection, nobody, nobody, nobody)  # stages 2-4 on SQLite
        anyone_subscribed(connection, nobody)
        if is_sqlite(connection):
            connection.execute(union_all(*(select(literal_column("1")).select_from(table).where(false())
                                           for table in _WRITTEN)))
        else:
            # An insert of no row plans the table, opens its indexes and fires its statement triggers (PL/pgSQL
            # compiled once per backend: dmfa_person's checks, migration 0005): a worker's first DmfA
            # transaction ~21-22 -> ~20 ms (a scratch run, session 9). Rolled back with the rest; RowExclusive
            # locks, which no other writer waits for.
            for table in _WRITTEN:
                connection.exec_driver_sql(f"INSERT INTO {table.name} SELECT * FROM {table.name} WHERE false")
        transaction.rollback()
