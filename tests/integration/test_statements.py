"""How many SQL statements a declaration costs, and the guarantees the fewer statements keep.

The real-time pipeline reads the directory and the message key, and writes
the archive row and the key (with the employer's lock), in one statement;
reads the periods the Dimona rules need in one; and writes the facts with
the signed result in one (on PostgreSQL; SQLite runs the same steps as plain
statements). On PostgreSQL the first one also tells issue 5's notification
hook whether anyone is subscribed. These tests count the statements sent through SQLAlchemy
(``before_cursor_execute``) and check, on both backends, that the combined
reads and writes still answer as the separate ones did: per-employer
serialisation under concurrent senders, student hours, scopes, and a pooled
connection that died while idle.
"""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import create_engine, func, select, text

from declarations import samples
from declarations.store import database
from declarations.store import tables as t
from sql_counting import counted  # tests/sql_counting.py

EMPLOYER = dict(sender_id="1001", noss="123456749", enterprise_nbr="0403179609")
STUDENT = "85073100130"


def signed(signer, element) -> bytes:
    return samples.to_bytes(signer.sign(element))


def hire(message_id, inss=STUDENT, **values):
    fields = dict(INSS=inss, StartingDate=dt.date(2025, 11, 15), JointCommissionNbr="302", WorkerType="OTH")
    fields.update(values)
    return samples.dimona("In", message_id=message_id, **EMPLOYER, **fields)


def test_statements_per_dimona(app, demo_signer):
    signer = demo_signer("sender-1001")
    sqlite = app.engine.dialect.name == "sqlite"
    app.ingest.submit(signed(signer, hire("warm-up", inss="85073100229")), channel="CLI")
    with counted(app.engine) as statements:
        receipt = app.ingest.submit(signed(signer, hire("in")), channel="CLI")
    assert receipt.outcome.status == "ACCEPTED"
    # PostgreSQL: directory + key + archive + lock + "is anyone subscribed to DIMONA?" (issue 5's notification
    # hook); periods + next PeriodId; facts + result. SQLite: BEGIN IMMEDIATE, the same reads, the writes one
    # table at a time, and the hook's own look-up.
    assert len(statements) <= (10 if sqlite else 3), statements
    period_id = receipt.outcome.period_id
    for action, values in (("Out", dict(EndingDate=dt.date(2025, 12, 31))),
                           ("Update", dict(JointCommissionNbr="302.01")), ("Cancel", {})):
        with counted(app.engine) as statements:
            receipt = app.ingest.submit(signed(signer, samples.dimona(
                action, message_id=action, **EMPLOYER, PeriodId=period_id, **values)), channel="CLI")
        assert receipt.outcome.status == "ACCEPTED", receipt.outcome.anomalies
        assert len(statements) <= (9 if sqlite else 3), (action, statements)
    # A safe retry reads and stores nothing more than its one look-up.
    with counted(app.engine) as statements:
        again = app.ingest.submit(signed(signer, hire("in")), channel="CLI")
    assert again.retry and len(statements) <= (2 if sqlite else 1), statements


def test_the_period_id_in_the_signed_result_is_the_stored_one(app, demo_signer):
    """The result is signed before the facts are written: the PeriodId it carries was drawn in advance."""
    signer = demo_signer("sender-1001")
    refused = app.ingest.submit(signed(signer, hire("late-and-bad", StartingDate=dt.date(2025, 11, 15),
                                                    EndingDate=dt.date(2025, 11, 1))), channel="CLI")
    assert refused.outcome.status == "REFUSED"
    ids = [app.ingest.submit(signed(signer, hire(f"in-{i}", inss=inss)), channel="CLI").outcome.period_id
           for i, inss in enumerate(samples.inss_series(3))]
    with app.engine.connect() as c:
        stored = c.execute(select(t.employment_period.c.period_id, t.employment_period.c.inss)
                           .order_by(t.employment_period.c.period_id)).all()
        versions = c.execute(select(t.employment_period_version.c.period_id)
                             .order_by(t.employment_period_version.c.period_id)).scalars().all()
    assert [row.period_id for row in stored] == ids == versions
    assert len(set(ids)) == 3 and ids == sorted(ids)
    # and a later In gets a new one, never a reused one
    later = app.ingest.submit(signed(signer, hire("in-4", inss="85073100229")), channel="CLI").outcome
    assert later.period_id > ids[-1]


def test_concurrent_overlapping_hires_accept_one(app, demo_signer):
    """Per-employer serialisation: the lock taken with the archive row is held before the overlap is read."""
    signer = demo_signer("sender-1001")
    app.ingest.submit(signed(signer, hire("warm-up", inss="85073100229")), channel="CLI")
    for worker_inss in samples.inss_series(5):  # several rounds: a race shows up in some, not in all
        documents = [signed(signer, hire(f"race-{worker_inss}-{i}", inss=worker_inss)) for i in range(6)]
        statuses, barrier = [], threading.Barrier(len(documents))

        def submit(data):
            barrier.wait()
            outcome = app.ingest.submit(data, channel="CLI").outcome
            statuses.append((outcome.status, tuple(a.code for a in outcome.anomalies)))

        threads = [threading.Thread(target=submit, args=(data,)) for data in documents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [("ACCEPTED", ())] + [("REFUSED", ("D002",))] * 5
        with app.engine.connect() as c:
            assert c.execute(select(func.count()).select_from(t.employment_period)
                             .where(t.employment_period.c.inss == worker_inss)).scalar_one() == 1


def test_student_hours_read_with_the_periods(app, demo_signer):
    """D008 from the one read of the worker's periods: other periods count, the updated one only once."""
    signer = demo_signer("sender-1001")

    def student(message_id, jc, hours):
        return hire(message_id, StartingDate=dt.date(2025, 12, 1), EndingDate=dt.date(2025, 12, 20),
                    JointCommissionNbr=jc, WorkerType="STU", PlannedHoursNbr=hours)

    first = app.ingest.submit(signed(signer, student("stu-1", "302", 400)), channel="CLI").outcome
    second = app.ingest.submit(signed(signer, student("stu-2", "200", 100)), channel="CLI").outcome
    assert first.status == second.status == "ACCEPTED"
    within = app.ingest.submit(signed(signer, samples.dimona(
        "Update", message_id="upd-1", **EMPLOYER, PeriodId=second.period_id, PlannedHoursNbr=200)),
        channel="CLI").outcome
    assert within.status == "ACCEPTED"  # 400 + 200: its own former 100 hours do not count
    over = app.ingest.submit(signed(signer, samples.dimona(
        "Update", message_id="upd-2", **EMPLOYER, PeriodId=second.period_id, PlannedHoursNbr=250)),
        channel="CLI").outcome
    assert [a.code for a in over.anomalies] == ["D008"]
    cancelled = app.ingest.submit(signed(signer, samples.dimona(
        "Cancel", message_id="cancel-1", **EMPLOYER, PeriodId=first.period_id)), channel="CLI").outcome
    assert cancelled.status == "ACCEPTED"
    third = app.ingest.submit(signed(signer, student("stu-3", "118", 340)), channel="CLI").outcome
    assert third.status == "ACCEPTED"  # 250 + 340: the cancelled 400 no longer count


def test_test_declarations_see_prod_and_their_own_test_periods(app, demo_signer):
    signer = demo_signer("sender-1001")
    test_in = app.ingest.submit(signed(signer, samples.dimona(
        "In", message_id="t-in", environment="TEST", **EMPLOYER, INSS=STUDENT, StartingDate=dt.date(2025, 11, 15),
        JointCommissionNbr="302", WorkerType="OTH")), channel="CLI").outcome
    assert test_in.status == "ACCEPTED"
    # PROD does not see the TEST period: neither to overlap nor to close it.
    assert app.ingest.submit(signed(signer, hire("p-in")), channel="CLI").outcome.status == "ACCEPTED"
    prod_out = app.ingest.submit(signed(signer, samples.dimona(
        "Out", message_id="p-out", **EMPLOYER, PeriodId=test_in.period_id, EndingDate=dt.date(2025, 12, 31))),
        channel="CLI").outcome
    assert [a.code for a in prod_out.anomalies] == ["D003"]
    # TEST sees both its own period and the PROD one.
    again = app.ingest.submit(signed(signer, samples.dimona(
        "In", message_id="t-in-2", environment="TEST", **EMPLOYER, INSS=STUDENT, StartingDate=dt.date(2025, 11, 20),
        JointCommissionNbr="302", WorkerType="OTH")), channel="CLI").outcome
    assert [a.code for a in again.anomalies] == ["D002"]


def test_a_pooled_connection_that_died_while_idle_is_replaced(app, demo_signer, monkeypatch):
    """No ping on every checkout: only a connection idle for a while is checked, and a dead one replaced."""
    signer = demo_signer("sender-1001")
    assert app.ingest.submit(signed(signer, hire("before")), channel="CLI").outcome.accepted
    if app.engine.dialect.name != "postgresql":
        return  # SQLite's connections are files: nothing to cut
    admin = create_engine(app.engine.url)  # not from the pool: cut every pooled connection
    with admin.connect() as c:
        cut = c.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    admin.dispose()
    assert cut >= 1
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    receipt = app.ingest.submit(signed(signer, hire("after", inss="85073100229")), channel="CLI")
    assert receipt.outcome.accepted


def test_an_untrusted_signer_does_not_take_the_message_key(app, demo_signer):
    """S003 is archived without the key: the same MessageId, properly signed, is then processed."""
    element = hire("key-kept")
    refused = app.ingest.submit(signed(demo_signer("sender-2001"), element), channel="CLI").outcome
    assert [a.code for a in refused.anomalies] == ["S003"]
    accepted = app.ingest.submit(signed(demo_signer("sender-1001"), hire("key-kept")), channel="CLI").outcome
    assert accepted.status == "ACCEPTED" and accepted.declaration_id != refused.declaration_id
    with app.engine.connect() as c:
        keys = c.execute(select(t.message_key.c.declaration_id)).scalars().all()
        archived = c.execute(select(t.declaration.c.id, t.declaration.c.status).order_by(t.declaration.c.id)).all()
    assert keys == [accepted.declaration_id]
    assert [tuple(row) for row in archived] == [(refused.declaration_id, "REFUSED"),
                                                (accepted.declaration_id, "ACCEPTED")]
