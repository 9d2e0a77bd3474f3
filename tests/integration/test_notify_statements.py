"""What the notifications of a declaration cost in SQL statements (issue 5), and that the fewer statements
write the same notifications on both backends.

On PostgreSQL, once someone is subscribed, the holders, every institution's counter and every notification
row are one statement (store.institutions.add_notifications), for a Dimona as for a DmfA of any size; the
Dimona's period before and after the change come from what the pipeline read (its DimonaView), not re-read.
SQLite runs plain statements (no round trips). Counted with SQLAlchemy's ``before_cursor_execute``.
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import insert, select

from declarations import samples
from declarations.domain import institution_messages as m
from declarations.store import tables as t
from sql_counting import counted  # tests/sql_counting.py

D = dt.date
EMPLOYER = dict(sender_id="1001", noss="123456749", enterprise_nbr="0403179609")
WORKER = "85073100130"
OTHERS = tuple(samples.valid_inss(n) for n in (7, 8, 9))
# The demo directory authorizes only ONEM for DIMONA: two more (as bench/bigstore.py does), and a second
# ONEM capacity, so that one Dimona notifies three institutions, one of them in two capacities.
EXTRA = (("INAMI", "INSURED", "DIMONA"), ("ONVA", "HOLIDAY_PAY_BENEFICIARY", "DIMONA"),
         ("ONEM", "JOB_SEEKER", "DIMONA"))
_ids = itertools.count(1)


def handle(app, request_type, institution, *args):
    answer = app.institutions.handle(request_type(m.Caller(institution, f"msg-{next(_ids)}"), *args))
    assert not isinstance(answer, m.Refused), answer
    return answer


def three_subscribers(app, data_type="DIMONA"):
    with app.engine.begin() as c:
        c.execute(insert(t.authorization), [dict(institution_id=i, capacity=cap, data_type=d, position=100 + n)
                                             for n, (i, cap, d) in enumerate(EXTRA)])
    for institution in ("ONEM", "INAMI", "ONVA"):
        handle(app, m.Subscribe, institution, data_type)


def submit(app, signer, element, statements=None):
    data = samples.to_bytes(signer.sign(element))
    if statements is None:
        return app.ingest.submit(data, channel="CLI").outcome
    with counted(app.engine) as got:
        outcome = app.ingest.submit(data, channel="CLI").outcome
    statements.append(got)
    return outcome


def rows(app, inss=None):
    n = t.notification
    query = select(n.c.institution_id, n.c.sequence, n.c.inss, n.c.change, n.c.period_start, n.c.period_end,
                   n.c.authorization, n.c.declaration_id).order_by(n.c.institution_id, n.c.sequence)
    with app.engine.connect() as c:
        return [tuple(r) for r in c.execute(query if inss is None else query.where(n.c.inss == inss))]


def test_a_dimona_with_three_subscribers_costs_one_statement_more(app, demo_signer):
    signer = demo_signer("sender-1001")
    postgres = app.engine.dialect.name == "postgresql"
    three_subscribers(app)
    handle(app, m.RegisterPerson, "ONEM", WORKER, "UNEMPLOYED", D(2025, 1, 1), None)
    handle(app, m.RegisterPerson, "ONEM", WORKER, "JOB_SEEKER", D(2025, 6, 1), D(2025, 6, 30))
    handle(app, m.RegisterPerson, "INAMI", WORKER, "INSURED", D(2025, 1, 1), D(2025, 3, 31))
    handle(app, m.RegisterPerson, "ONVA", WORKER, "HOLIDAY_PAY_BENEFICIARY", D(2025, 11, 1), None)
    assert submit(app, signer, samples.dimona(  # warm-up, nobody holds this one
        "In", message_id="warm", **EMPLOYER, INSS=OTHERS[0], StartingDate=D(2025, 3, 1),
        JointCommissionNbr="302", WorkerType="OTH")).accepted
    counts: list[list[str]] = []
    hired = submit(app, signer, samples.dimona(
        "In", message_id="in", **EMPLOYER, INSS=WORKER, StartingDate=D(2025, 3, 1), JointCommissionNbr="302",
        WorkerType="OTH"), counts)
    assert hired.accepted, hired.anomalies
    period = hired.period_id
    # Out to 31 May: the days before it (1 June onwards) are concerned too, so ONEM's June entry counts.
    for action, values in (("Out", dict(EndingDate=D(2025, 5, 31))), ("Update", dict(StartingDate=D(2025, 4, 1))),
                           ("Cancel", {})):
        outcome = submit(app, signer, samples.dimona(action, message_id=action, **EMPLOYER, PeriodId=period,
                                                     **values), counts)
        assert outcome.accepted, (action, outcome.anomalies)
    if postgres:
        # The Dimona's own 3 (test_statements.py) and the notifications' 1: holders, counters, rows.
        assert [len(s) for s in counts] == [4, 4, 4, 4], counts
        assert all(sum("notification" in s for s in got) == 1 for got in counts)
    first = hired.declaration_id
    unemployed, both = "UNEMPLOYED:DIMONA", "JOB_SEEKER:DIMONA,UNEMPLOYED:DIMONA"
    assert rows(app) == [
        ("INAMI", 1, WORKER, "NEW", D(2025, 3, 1), None, "INSURED:DIMONA", first),
        ("INAMI", 2, WORKER, "UPDATED", D(2025, 3, 1), D(2025, 5, 31), "INSURED:DIMONA", first + 1),
        # the Update moves the start to 1 April: the days of March are still concerned
        ("INAMI", 3, WORKER, "UPDATED", D(2025, 4, 1), D(2025, 5, 31), "INSURED:DIMONA", first + 2),
        # the Cancel concerns 1 April - 31 May only: INAMI's entry ends on 31 March
        ("ONEM", 1, WORKER, "NEW", D(2025, 3, 1), None, both, first),
        ("ONEM", 2, WORKER, "UPDATED", D(2025, 3, 1), D(2025, 5, 31), both, first + 1),
        ("ONEM", 3, WORKER, "UPDATED", D(2025, 4, 1), D(2025, 5, 31), unemployed, first + 2),
        ("ONEM", 4, WORKER, "CANCELLED", D(2025, 4, 1), D(2025, 5, 31), unemployed, first + 3),
        ("ONVA", 1, WORKER, "NEW", D(2025, 3, 1), None, "HOLIDAY_PAY_BENEFICIARY:DIMONA", first),
        # the period was open-ended before the Out: every day from 1 March is concerned, November too
        ("ONVA", 2, WORKER, "UPDATED", D(2025, 3, 1), D(2025, 5, 31), "HOLIDAY_PAY_BENEFICIARY:DIMONA", first + 1)]
    # and nothing for a TEST declaration
    assert submit(app, signer, samples.dimona(
        "In", message_id="test-in", environment="TEST", **EMPLOYER, INSS=WORKER, StartingDate=D(2025, 9, 1),
        JointCommissionNbr="302", WorkerType="OTH")).accepted
    assert len(rows(app)) == 9


def test_a_dmfa_notifies_every_person_in_one_statement(app, demo_signer):
    """Three institutions, four persons, a replacement that drops two of them: one statement each time."""
    signer = demo_signer("sender-1001")
    postgres = app.engine.dialect.name == "postgresql"
    for institution in ("ONEM", "INAMI", "ONVA"):
        handle(app, m.Subscribe, institution, "DMFA")
    everyone = (WORKER, *OTHERS)
    for inss in everyone:
        handle(app, m.RegisterPerson, "ONEM", inss, "UNEMPLOYED", D(2025, 1, 1), None)
    handle(app, m.RegisterPerson, "INAMI", OTHERS[1], "INSURED", D(2025, 9, 30), None)
    handle(app, m.RegisterPerson, "INAMI", OTHERS[2], "INSURED", D(2025, 10, 1), None)  # after the quarter
    handle(app, m.RegisterPerson, "ONVA", OTHERS[2], "HOLIDAY_PAY_BENEFICIARY", D(2024, 1, 1), D(2025, 7, 1))

    def dmfa(message_id, workers, declaration_type="ORIGINAL", replaces=None):
        return samples.dmfa(message_id=message_id, **EMPLOYER, quarter="20253", declaration_type=declaration_type,
                            replaces=replaces, workers=[samples.worker(inss, sequence=n, occupations=[
                                samples.occupation(start=D(2025, 7, 1), jc="302", services=[("001", 3000)],
                                                   remuns=[("001", 900000)])]) for n, inss in enumerate(workers, 1)])

    counts: list[list[str]] = []
    original = submit(app, signer, dmfa("q3", everyone), counts)
    assert original.accepted, original.anomalies
    replacement = submit(app, signer, dmfa("q3r", (OTHERS[2], WORKER), "REPLACEMENT", original.declaration_id),
                         counts)
    assert replacement.accepted, replacement.anomalies
    if postgres:
        notify = [[s for s in got if "register_entry" in s or "institution_sequence" in s or "notification" in s]
                  for got in counts]
        assert [len(s) for s in notify] == [1, 1], notify
    q3 = (D(2025, 7, 1), D(2025, 9, 30))
    o, r = original.declaration_id, replacement.declaration_id
    assert [x[:4] + (x[4], x[5], x[7]) for x in rows(app)] == [
        ("INAMI", 1, OTHERS[1], "NEW", *q3, o),
        ("INAMI", 2, OTHERS[1], "REPLACED", *q3, r),         # dropped by the replacement
        *[("ONEM", n, inss, "NEW", *q3, o) for n, inss in enumerate(everyone, 1)],
        # the replacement's own persons in its order, then those it dropped in the original's order
        *[("ONEM", n, inss, "REPLACED", *q3, r) for n, inss in enumerate((OTHERS[2], WORKER, OTHERS[0], OTHERS[1]),
                                                                         len(everyone) + 1)],
        ("ONVA", 1, OTHERS[2], "NEW", *q3, o),
        ("ONVA", 2, OTHERS[2], "REPLACED", *q3, r)]
    assert {x[6] for x in rows(app) if x[0] == "ONEM"} == {"UNEMPLOYED:DMFA"}


def test_three_institutions_concurrent_writers_no_gap_no_deadlock(app, demo_signer):
    """Writers on three employers at once (not serialised by the employer lock), Dimonas (one person) and DmfAs
    (several) mixed: every institution's counter is taken in the same order by both statements, so nobody
    deadlocks, and each institution's Sequences come out 1..N with no gap and no duplicate."""
    import threading

    three_subscribers(app)
    for institution in ("ONEM", "INAMI", "ONVA"):
        handle(app, m.Subscribe, institution, "DMFA")
    writers = [("sender-1001", "1001", "123456749"), ("sender-2001", "2001", "555123433"),
               ("sender-2001", "2001", "009988768")]
    per_writer, births = 8, ("700101", "700102", "700103")
    people = {birth: [samples.valid_inss(k, birth=birth) for k in range(per_writer)] for birth in births}
    for inss in [i for group in people.values() for i in group]:
        handle(app, m.RegisterPerson, "ONEM", inss, "UNEMPLOYED", D(2025, 1, 1), None)
        handle(app, m.RegisterPerson, "INAMI", inss, "INSURED", D(2025, 1, 1), None)
        handle(app, m.RegisterPerson, "ONVA", inss, "HOLIDAY_PAY_BENEFICIARY", D(2025, 1, 1), None)
    documents = []
    for (key, sender, noss), birth in zip(writers, births):
        signer = demo_signer(key)
        batch = [signer.sign(samples.dimona("In", message_id=f"race-{noss}-{n}", sender_id=sender, noss=noss,
                                            INSS=inss, StartingDate=D(2025, 11, 20), JointCommissionNbr="200",
                                            WorkerType="OTH")) for n, inss in enumerate(people[birth])]
        # sender 2001 declares DmfAs for 555123433 only: the third writer's DmfA is that employer's Q2
        dmfa_noss, quarter, first = (noss, "20253", D(2025, 7, 1)) if noss != "009988768" else \
            ("555123433", "20252", D(2025, 4, 1))
        batch.insert(per_writer // 2, signer.sign(samples.dmfa(
            message_id=f"race-dmfa-{noss}", sender_id=sender, noss=dmfa_noss, quarter=quarter, workers=[
                samples.worker(inss, sequence=n, occupations=[samples.occupation(
                    start=first, jc="200", services=[("001", 3000)], remuns=[("001", 900000)])])
                for n, inss in enumerate(people[birth], 1)])))
        documents.append([samples.to_bytes(d) for d in batch])
    outcomes, barrier = [], threading.Barrier(len(documents))

    def write(batch):
        barrier.wait()
        for data in batch:
            outcomes.append(app.ingest.submit(data, channel="CLI").outcome)

    threads = [threading.Thread(target=write, args=(batch,)) for batch in documents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 3 * (per_writer + 1) and all(o.accepted for o in outcomes), \
        [o.anomalies for o in outcomes if not o.accepted]
    expected = 3 * per_writer * 2  # each person: one Dimona, one DmfA
    for institution in ("INAMI", "ONEM", "ONVA"):
        got = [(x[1], x[2], x[3]) for x in rows(app) if x[0] == institution]
        assert [sequence for sequence, _, _ in got] == list(range(1, expected + 1)), institution
        assert len(set(got)) == expected
        answer = handle(app, m.GetNotifications, institution, 0, 1000)
        assert answer.last_sequence == expected
