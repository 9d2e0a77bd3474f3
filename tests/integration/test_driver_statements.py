"""The hot PostgreSQL statements on the driver's cursor (database.DriverStatement) keep SQLAlchemy's guarantees.

facts.receive, DimonaView and facts.store_dimona skip ``Connection.execute``
on PostgreSQL (its per-statement cost), but still go through the
connection's ``_cursor_execute``: the statements are seen by the cursor
events (so they are counted, test_statements.py), they run in the
declaration's one transaction, a driver error comes out as SQLAlchemy's
own, and a connection lost under them is invalidated and replaced, as
with ``execute``.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, create_engine, event, exc, select, text

from declarations import samples
from declarations.store import database
from declarations.store import tables as t
from declarations.store.database import DriverStatement

EMPLOYER = dict(sender_id="1001", noss="123456749", enterprise_nbr="0403179609")


def hire(signer, message_id, inss):
    return samples.to_bytes(signer.sign(samples.dimona(
        "In", message_id=message_id, **EMPLOYER, INSS=inss, StartingDate=dt.date(2025, 11, 15),
        JointCommissionNbr="302", WorkerType="OTH")))


def postgresql_only(app):
    if app.engine.dialect.name != "postgresql":
        pytest.skip("DriverStatement serves the PostgreSQL path; SQLite runs Connection.execute")


def test_the_three_statements_of_a_dimona_are_seen_by_the_cursor_events(app, demo_signer):
    postgresql_only(app)
    signer = demo_signer("sender-1001")
    app.ingest.submit(hire(signer, "warm-up", "85073100229"), channel="CLI")
    before, after = [], []

    def on_before(_conn, _cursor, statement, parameters, _context, _many):
        before.append((statement, parameters))

    def on_after(_conn, _cursor, statement, *_rest):
        after.append(statement)

    event.listen(app.engine, "before_cursor_execute", on_before)
    event.listen(app.engine, "after_cursor_execute", on_after)
    try:
        receipt = app.ingest.submit(hire(signer, "counted", "85073100130"), channel="CLI")
    finally:
        event.remove(app.engine, "before_cursor_execute", on_before)
        event.remove(app.engine, "after_cursor_execute", on_after)
    assert receipt.outcome.status == "ACCEPTED"
    statements = [" ".join(s.split())[:40] for s, _ in before]
    assert statements == ["WITH archived AS ( INSERT INTO declarati",
                          "SELECT n.next_id, employment_period.peri",
                          "WITH new_person AS ( INSERT INTO person "], statements
    assert after == [s for s, _ in before]
    # The Core statement's own literal (the student worker type) is sent with the caller's parameters.
    assert before[1][1]["worker_type_1"] == "STU" and before[1][1]["inss"] == "85073100130"
    with app.engine.connect() as c:
        stored = c.execute(select(t.employment_period.c.period_id, t.employment_period.c.inss)
                           .where(t.employment_period.c.period_id == receipt.outcome.period_id)).one()
    assert tuple(stored) == (receipt.outcome.period_id, "85073100130")


def test_a_connection_lost_under_a_driver_statement_is_invalidated_and_replaced(app, demo_signer, monkeypatch):
    """Cut within the idle window (no ping): the statement fails as SQLAlchemy's error, the connection is
    invalidated, nothing is stored, and the next declaration runs on a new connection."""
    postgresql_only(app)
    signer = demo_signer("sender-1001")
    assert app.ingest.submit(hire(signer, "before", "85073100229"), channel="CLI").outcome.accepted
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)
    admin = create_engine(app.engine.url)  # not from the pool
    with admin.connect() as c:
        cut = c.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    admin.dispose()
    assert cut >= 1
    with pytest.raises(exc.DBAPIError) as raised:
        app.ingest.submit(hire(signer, "cut", "85073100130"), channel="CLI")
    assert raised.value.connection_invalidated
    again = app.ingest.submit(hire(signer, "cut", "85073100130"), channel="CLI")
    assert again.outcome.status == "ACCEPTED" and not again.retry


def test_a_driver_error_is_sqlalchemys_and_rolls_back_with_the_transaction(app):
    postgresql_only(app)
    duplicate = DriverStatement(text("INSERT INTO person (inss) VALUES (:inss)"))
    with pytest.raises(exc.IntegrityError):
        with app.engine.begin() as connection:
            duplicate.execute(connection, {"inss": "85073100130"})
            duplicate.execute(connection, {"inss": "85073100130"})
    with app.engine.connect() as c:
        assert c.execute(select(t.person.c.inss).where(t.person.c.inss == "85073100130")).all() == []


def test_a_driver_statement_runs_only_inside_a_transaction(app):
    postgresql_only(app)
    statement = DriverStatement(select(t.person.c.inss).where(t.person.c.inss == bindparam("inss")))
    with app.engine.connect() as connection:
        with pytest.raises(exc.InvalidRequestError):
            statement.rows(connection, {"inss": "85073100130"})
    with app.engine.begin() as connection:
        assert statement.rows(connection, {"inss": "85073100130"}) == []


def test_statements_sqlalchemy_would_process_are_refused(app):
    postgresql_only(app)
    expanding = DriverStatement(select(t.person.c.inss).where(t.person.c.inss.in_(bindparam("many", expanding=True))))
    with app.engine.begin() as connection:
        with pytest.raises(TypeError):
            expanding.rows(connection, {"many": ["85073100130"]})
