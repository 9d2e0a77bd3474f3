"""How many SQL statements a Consult costs, and the guarantees the fewer statements keep (issue 5).

On PostgreSQL a signed Consult of DIMONA or DMFA is two statements
(store.open_request: the signing certificate checked against the directory,
the MessageId claimed, the register basis and the data of the span that may
be granted read;
then the access-log append) in one transaction; SQLite runs the same steps as
plain statements. These tests count the statements sent through SQLAlchemy
(``before_cursor_execute``) on both backends, from the signed request element
(services/institution_requests.py) to the signed answer, and check that the
combined statement still refuses as the separate ones did: an unregistered or
expired certificate takes no MessageId (A004), a reused MessageId is A005,
no data is read for a person the institution does not follow, and the data
read for the asked window is cut to the granted days and quarters.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from declarations import samples
from declarations.channels.soap.institutions import signed_answer
from declarations.domain import institution_messages as m
from declarations.services import institution_requests
from declarations.store import institutions as store
from declarations.store import tables as t
from declarations.xmlio import institution_xml
from sql_counting import counted  # tests/sql_counting.py

D = dt.date
NOW = dt.datetime.fromisoformat("2025-11-15T10:00:00+01:00")
EMPLOYER = dict(sender_id="1001", noss="123456749", enterprise_nbr="0403179609")
WORKER = "85073100130"
STRANGER = samples.valid_inss(7)  # works too, but no institution follows them
_ids = itertools.count(1)


def submit(app, signer, element):
    outcome = app.ingest.submit(samples.to_bytes(signer.sign(element)), channel="CLI").outcome
    assert outcome.accepted, outcome.anomalies
    return outcome


def hire(message_id, inss=WORKER, start=D(2025, 3, 1), end=None):
    return samples.dimona("In", message_id=message_id, **EMPLOYER, INSS=inss, StartingDate=start, EndingDate=end,
                          JointCommissionNbr="302", WorkerType="OTH")


def dmfa(message_id, quarter, workers=(WORKER,), start=None):
    first = D(int(quarter[:4]), 3 * int(quarter[4]) - 2, 1)
    return samples.dmfa(message_id=message_id, **EMPLOYER, quarter=quarter, workers=[
        samples.worker(inss, sequence=n, occupations=[samples.occupation(
            start=start or first, jc="302", services=[("001", 3000)], remuns=[("001", 900000)])])
        for n, inss in enumerate(workers, 1)])


def register(app, institution, capacity, start, end=None, inss=WORKER):
    answer = app.institutions.handle(m.RegisterPerson(m.Caller(institution, f"reg-{next(_ids)}"), inss, capacity,
                                                      start, end))
    assert isinstance(answer, m.RegisterChanged), answer


def consult_element(signer, data_type, start, end, *, institution="ONEM", inss=WORKER, message_id=None):
    request = m.Consult(m.Caller(institution, message_id or f"c-{next(_ids)}"), inss, data_type, start, end)
    return signer.sign(institution_xml.request_element(request))


def answer(app, element, now=NOW):
    """What the SOAP channel does with a request element: authenticate, decide, sign the answer."""
    got = institution_requests.answer(app.institutions, element, now)
    assert signed_answer(app, got)
    return got


def log_rows(app):
    with app.engine.connect() as c:
        return c.execute(select(t.access_log).order_by(t.access_log.c.sequence)).all()


def claimed(app, institution_id, message_id) -> bool:
    im = t.institution_message
    with app.engine.connect() as c:
        return c.execute(select(im.c.message_id).where(im.c.institution_id == institution_id,
                                                       im.c.message_id == message_id)).first() is not None


def stored_data(app, demo_signer):
    sender = demo_signer("sender-1001")
    hired = submit(app, sender, hire("h1", start=D(2024, 6, 1)))
    submit(app, sender, hire("h-stranger", inss=STRANGER, start=D(2024, 6, 1)))
    q2 = submit(app, sender, dmfa("q2", "20252", workers=(WORKER, STRANGER)))
    q3 = submit(app, sender, dmfa("q3", "20253", workers=(WORKER, STRANGER)))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    return hired, q2, q3


def test_statements_per_signed_consult(app, demo_signer):
    hired, q2, q3 = stored_data(app, demo_signer)
    onem = demo_signer("onem")
    sqlite = app.engine.dialect.name == "sqlite"
    answer(app, consult_element(onem, "DIMONA", D(2025, 1, 1), D(2025, 1, 31)))  # warm-up
    with counted(app.engine) as statements:
        dimona = answer(app, consult_element(onem, "DIMONA", D(2025, 1, 1), D(2025, 12, 31)))
    assert [(p.period_id, p.start, p.end) for p in dimona.periods] == [(hired.period_id, D(2025, 1, 1),
                                                                         D(2025, 12, 31))]
    # PostgreSQL: certificate + MessageId + register basis + periods; the log append. SQLite: BEGIN IMMEDIATE,
    # the certificate, the claim, the basis, the periods, the log in three.
    assert len(statements) == (8 if sqlite else 2), statements
    with counted(app.engine) as statements:
        quarters = answer(app, consult_element(onem, "DMFA", D(2025, 4, 1), D(2025, 9, 30)))
    assert [(q.declaration_id, q.quarter) for q in quarters.quarters] == [(q2.declaration_id, 2),
                                                                          (q3.declaration_id, 3)]
    assert [r.amount for q in quarters.quarters for r in q.occupations[0].remunerations] == [900000, 900000]
    assert [s.days for q in quarters.quarters for s in q.occupations[0].services] == [3000, 3000]
    # PostgreSQL: the same two (records, services and remunerations in the first); SQLite: as for DIMONA, the
    # worker records read with their occupations, services and remunerations (one row each since migration
    # 0008) instead of the periods.
    assert len(statements) == (8 if sqlite else 2), statements
    assert [(e.operation, e.outcome, e.data_type) for e in log_rows(app)[-2:]] == [
        ("Consult", "GRANTED", "DIMONA"), ("Consult", "GRANTED", "DMFA")]


def test_an_unregistered_certificate_is_A004_and_takes_no_message_id(app, demo_signer):
    stored_data(app, demo_signer)
    sqlite = app.engine.dialect.name == "sqlite"
    element = consult_element(demo_signer("inami"), "DIMONA", D(2025, 1, 1), D(2025, 12, 31), message_id="mine")
    with counted(app.engine) as statements:
        refused = answer(app, element)
    assert (refused.code, refused.caller) == ("A004", m.Caller("ONEM", "mine"))
    assert "is not registered for institution ONEM" in refused.message
    assert len(statements) == (5 if sqlite else 2), statements
    assert not claimed(app, "ONEM", "mine")
    last = log_rows(app)[-1]
    assert (last.institution_id, last.operation, last.outcome, last.message_id, last.inss, last.data_type) == \
        ("ONEM", "Consult", "A004", "mine", None, None)
    # ONEM's own signature on the same MessageId is served
    served = answer(app, consult_element(demo_signer("onem"), "DIMONA", D(2025, 1, 1), D(2025, 12, 31),
                                         message_id="mine"))
    assert isinstance(served, m.ConsultResult) and len(served.periods) == 1


def test_a_certificate_not_valid_now_is_A004_and_takes_no_message_id(app, demo_signer):
    stored_data(app, demo_signer)
    element = consult_element(demo_signer("onem"), "DMFA", D(2025, 1, 1), D(2025, 12, 31), message_id="late")
    refused = answer(app, element, dt.datetime(2036, 1, 2, tzinfo=dt.timezone.utc))
    assert refused.code == "A004" and "valid from 2024-01-01 to 2035-12-31" in refused.message
    assert not claimed(app, "ONEM", "late")
    assert isinstance(answer(app, element), m.ConsultResult)


def test_a_reused_message_id_is_A005_in_the_same_two_statements(app, demo_signer):
    stored_data(app, demo_signer)
    sqlite = app.engine.dialect.name == "sqlite"
    onem = demo_signer("onem")
    assert isinstance(answer(app, consult_element(onem, "DIMONA", D(2025, 1, 1), D(2025, 12, 31),
                                                  message_id="once")), m.ConsultResult)
    with counted(app.engine) as statements:
        again = answer(app, consult_element(onem, "DMFA", D(2025, 1, 1), D(2025, 12, 31), message_id="once"))
    assert again.code == "A005"
    assert len(statements) == (6 if sqlite else 2), statements


def test_no_data_is_read_for_a_person_the_institution_does_not_follow(app, demo_signer):
    """The data comes with the claim only if a register entry of the institution for the person is in a
    capacity authorized for the data type (the desk decides afterwards, on what it was given)."""
    stored_data(app, demo_signer)
    register(app, "INAMI", "INSURED", D(2025, 1, 1), inss=STRANGER)  # INAMI: DMFA, not DIMONA
    for institution, inss, data_type in (("ONEM", STRANGER, "DIMONA"), ("ONEM", STRANGER, "DMFA"),
                                         ("INAMI", STRANGER, "DIMONA")):
        with app.engine.begin() as c:
            opened = store.open_request(c, institution, f"peek-{next(_ids)}", fingerprint=None, reserve=True,
                                        consult=store.ConsultAsk(inss, data_type, D(2024, 1, 1), D(2025, 12, 31)))
        assert opened.claimed and not opened.periods and not opened.quarters, (institution, data_type)
        refused = app.institutions.handle(m.Consult(m.Caller(institution, f"c-{next(_ids)}"), inss, data_type,
                                                    D(2024, 1, 1), D(2025, 12, 31)))
        assert isinstance(refused, m.Refused) and refused.code in ("A001", "A002"), refused
    with app.engine.begin() as c:  # and when it does follow them, the data comes (on PostgreSQL)
        opened = store.open_request(c, "INAMI", f"peek-{next(_ids)}", fingerprint=None, reserve=True,
                                    consult=store.ConsultAsk(STRANGER, "DMFA", D(2024, 1, 1), D(2025, 12, 31)))
    assert [e.capacity for e in opened.entries] == ["INSURED"]
    assert opened.quarters is None if app.engine.dialect.name == "sqlite" else len(opened.quarters) == 2


def test_data_read_for_the_asked_window_is_cut_to_the_granted_quarters_and_days(app, demo_signer):
    """An occupation that began in an earlier quarter overlaps the granted days, but that quarter lies
    outside them: it is not answered, as when only the granted quarters were read."""
    sender = demo_signer("sender-1001")
    q2 = submit(app, sender, dmfa("q2", "20252", start=D(2025, 4, 1)))
    q3 = submit(app, sender, dmfa("q3", "20253", start=D(2025, 4, 1)))  # the occupation began in Q2
    hired = submit(app, sender, hire("h1", start=D(2024, 6, 1), end=D(2025, 7, 15)))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 7, 10), D(2025, 9, 30))
    onem = demo_signer("onem")
    quarters = answer(app, consult_element(onem, "DMFA", D(2025, 1, 1), D(2025, 12, 31)))
    assert [(q.declaration_id, q.quarter) for q in quarters.quarters] == [(q3.declaration_id, 3)]
    assert q2.declaration_id != q3.declaration_id
    occupation = quarters.quarters[0].occupations[0]
    assert (occupation.start, occupation.end) == (D(2025, 7, 10), D(2025, 9, 30))
    periods = answer(app, consult_element(onem, "DIMONA", D(2024, 1, 1), D(2025, 12, 31)))
    assert [(p.period_id, p.start, p.end) for p in periods.periods] == [(hired.period_id, D(2025, 7, 10),
                                                                         D(2025, 7, 15))]
    assert [(g.start, g.end) for g in periods.granted] == [(D(2025, 7, 10), D(2025, 9, 30))]


def test_only_the_span_that_may_be_granted_is_read(app, demo_signer):
    """The first statement reads the days some authorized register entry could grant within the asked
    window, not the whole window: nothing for a window outside every register period (A003), only the
    periods and quarters of the span otherwise."""
    sender = demo_signer("sender-1001")
    submit(app, sender, hire("h-early", start=D(2024, 2, 1), end=D(2024, 3, 31)))  # outside the register period
    later = submit(app, sender, hire("h-later", start=D(2025, 7, 1)))
    submit(app, sender, dmfa("q1-2024", "20241", start=D(2024, 2, 1)))
    q3 = submit(app, sender, dmfa("q3", "20253", start=D(2025, 7, 1)))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 7, 10), D(2025, 9, 30))

    def opened(data_type, start, end):
        with app.engine.begin() as c:
            return store.open_request(c, "ONEM", f"peek-{next(_ids)}", fingerprint=None, reserve=True,
                                      consult=store.ConsultAsk(WORKER, data_type, start, end))

    on_sqlite = app.engine.dialect.name == "sqlite"  # SQLite reads nothing with the claim: the desk reads [lo, hi]
    outside = opened("DIMONA", D(2024, 1, 1), D(2024, 12, 31))
    assert outside.claimed and (outside.periods is None if on_sqlite else outside.periods == [])
    refused = app.institutions.handle(m.Consult(m.Caller("ONEM", f"c-{next(_ids)}"), WORKER, "DIMONA",
                                                D(2024, 1, 1), D(2024, 12, 31)))
    assert isinstance(refused, m.Refused) and refused.code == "A003", refused
    wide = opened("DIMONA", D(2000, 1, 1), D(2030, 12, 31))
    dmfa_wide = opened("DMFA", D(2000, 1, 1), D(2030, 12, 31))
    if not on_sqlite:
        assert [p.period_id for p in wide.periods] == [later.period_id]   # not the 2024 period
        assert [q.declaration_id for q in dmfa_wide.quarters] == [q3.declaration_id]   # not 2024Q1
    granted = app.institutions.handle(m.Consult(m.Caller("ONEM", f"c-{next(_ids)}"), WORKER, "DIMONA",
                                                D(2000, 1, 1), D(2030, 12, 31)))
    assert [(p.period_id, p.start, p.end) for p in granted.periods] == [(later.period_id, D(2025, 7, 10),
                                                                         D(2025, 9, 30))]


PERIOD_FIELDS = ("period_id", "declaration_id", "employer_noss", "worker_type", "joint_commission",
                 "starting_date", "ending_date", "planned_hours")


def _quarters(quarters):
    return [(q.declaration_id, q.employer_noss, q.quarter, q.person_nbr, q.record_nbr, q.worker_code,
             [({k: v for k, v in o.items() if k not in ("services", "remunerations")},
               [(s.code, s.days, s.hours) for s in o["services"]], [(r.code, r.amount) for r in o["remunerations"]])
              for o in q.occupations]) for q in quarters]


def test_the_combined_statement_reads_what_the_separate_reads_do(app, demo_signer):
    """open_request's rows (one shape for every part, mapped back by position) give, field by field, what
    current_periods and current_quarters read: a swapped column would show here."""
    if app.engine.dialect.name == "sqlite":
        pytest.skip("SQLite reads with the separate statements themselves")
    sender = demo_signer("sender-1001")
    submit(app, sender, hire("h1", start=D(2024, 6, 1), end=D(2025, 2, 10)))
    submit(app, sender, samples.dimona("In", message_id="h2", **EMPLOYER, INSS=WORKER, StartingDate=D(2025, 3, 1),
                                       EndingDate=D(2025, 3, 20), JointCommissionNbr="200", WorkerType="STU",
                                       PlannedHoursNbr=120))
    gone = submit(app, sender, hire("h3", start=D(2025, 5, 1), end=D(2025, 5, 3)))
    submit(app, sender, samples.dimona("Cancel", message_id="c3", **EMPLOYER, PeriodId=gone.period_id))
    submit(app, sender, samples.dmfa(message_id="q2", **EMPLOYER, quarter="20252", workers=[
        samples.worker(WORKER, sequence=1, worker_code="015", occupations=[
            samples.occupation(1, start=D(2025, 4, 1), end=D(2025, 5, 15), jc="200", wds=400, mean=3000, ref=3800,
                               services=[("001", 2000), ("002", 500)], remuns=[("001", 500000), ("002", 1000)]),
            samples.occupation(2, start=D(2025, 5, 16), jc="302", services=[("001", 1000)], remuns=[("001", 7)])])]))
    submit(app, sender, dmfa("q3", "20253"))
    register(app, "ONEM", "UNEMPLOYED", D(2020, 1, 1))
    start, end = D(2024, 1, 1), D(2025, 12, 31)
    with app.engine.begin() as c:
        periods = store.open_request(c, "ONEM", f"x-{next(_ids)}", fingerprint=None, reserve=True,
                                     consult=store.ConsultAsk(WORKER, "DIMONA", start, end)).periods
        quarters = store.open_request(c, "ONEM", f"x-{next(_ids)}", fingerprint=None, reserve=True,
                                      consult=store.ConsultAsk(WORKER, "DMFA", start, end)).quarters
        expected_periods = store.current_periods(c, WORKER, start, end)
        expected_quarters = store.current_quarters(c, WORKER, 20241, 20254)
    assert len(periods) == 2 and len(quarters) == 2
    assert ([tuple(getattr(p, f) for f in PERIOD_FIELDS) for p in periods]
            == [tuple(getattr(p, f) for f in PERIOD_FIELDS) for p in expected_periods])
    assert _quarters(quarters) == _quarters(expected_quarters)


def test_a_message_id_claimed_by_an_open_transaction_waits_for_its_outcome(app, demo_signer):
    """Two requests with one MessageId at once: the second waits on the first's claim, then is A005 if the
    first committed, or answered if the first rolled back (nothing was spent)."""
    import threading

    if app.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: the second request cannot start its claim meanwhile")
    hired, _q2, _q3 = stored_data(app, demo_signer)
    onem = demo_signer("onem")
    for outcome in ("commit", "rollback"):
        message_id = f"race-{outcome}"
        with app.engine.connect() as holder:
            transaction = holder.begin()
            assert store.open_request(holder, "ONEM", message_id, fingerprint=None, reserve=True).claimed
            element = consult_element(onem, "DIMONA", D(2025, 1, 1), D(2025, 12, 31), message_id=message_id)
            got = []
            second = threading.Thread(target=lambda: got.append(answer(app, element)))
            second.start()
            second.join(0.5)
            assert second.is_alive() and not got  # waiting on the claim
            (transaction.commit if outcome == "commit" else transaction.rollback)()
        second.join(10)
        if outcome == "commit":
            assert isinstance(got[0], m.Refused) and got[0].code == "A005", got
        else:
            assert isinstance(got[0], m.ConsultResult) and [p.period_id for p in got[0].periods] == [hired.period_id]
