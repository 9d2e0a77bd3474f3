"""The institutions' desk on stored data (institutions.md), SQLite and PostgreSQL (the ``app`` fixture).

Declarations go in signed through the real pipeline; the desk is called with
the typed requests the XML side builds (domain/institution_messages.py).
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from declarations import samples
from declarations.domain import institution_messages as m
from declarations.store import tables as t

D = dt.date
EMPLOYER = dict(sender_id="1001", noss="123456749", enterprise_nbr="0403179609")
WORKER = "85073100130"
OTHER = samples.valid_inss(7)
_ids = itertools.count(1)


def caller(institution="ONEM", message_id=None):
    return m.Caller(institution, message_id or f"msg-{next(_ids)}")


def submit(app, signer, element):
    receipt = app.ingest.submit(samples.to_bytes(signer.sign(element)), channel="CLI")
    return receipt.outcome


def hire(message_id, inss=WORKER, start=D(2025, 3, 1), end=None, environment="PROD", **extra):
    return samples.dimona("In", message_id=message_id, **EMPLOYER, environment=environment, INSS=inss,
                          StartingDate=start, EndingDate=end, JointCommissionNbr="302", WorkerType="OTH", **extra)


def dmfa(message_id, quarter="20253", workers=(WORKER,), declaration_type="ORIGINAL", replaces=None, pay=900000,
         environment="PROD"):
    first = D(int(quarter[:4]), 3 * int(quarter[4]) - 2, 1)
    return samples.dmfa(message_id=message_id, **EMPLOYER, quarter=quarter, declaration_type=declaration_type,
                        replaces=replaces, environment=environment, workers=[
                            samples.worker(inss, sequence=n, occupations=[samples.occupation(
                                start=first, jc="302", services=[("001", 3000)], remuns=[("001", pay)])])
                            for n, inss in enumerate(workers, 1)])


def register(app, institution, capacity, start, end=None, inss=WORKER):
    return app.institutions.handle(m.RegisterPerson(caller(institution), inss, capacity, start, end))


def consult(app, institution, data_type, start, end, inss=WORKER, message_id=None):
    return app.institutions.handle(m.Consult(caller(institution, message_id), inss, data_type, start, end))


def log_rows(app):
    with app.engine.connect() as c:
        return c.execute(select(t.access_log).order_by(t.access_log.c.sequence)).all()


# --- register and the public table ---------------------------------------------------

def test_list_authorizations_is_the_directory_table(app):
    answer = app.institutions.handle(m.ListAuthorizations(caller()))
    assert isinstance(answer, m.AuthorizationList)
    assert ("ONEM", "UNEMPLOYED", "DIMONA") in [(a.institution_id, a.capacity, a.data_type)
                                                for a in answer.authorizations]
    assert len(answer.authorizations) == 8


def test_register_in_an_authorized_capacity_only_and_unregister(app):
    answer = register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1), D(2025, 6, 30))
    assert isinstance(answer, m.RegisterChanged) and answer.operation == "REGISTERED"
    again = register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1), D(2025, 6, 30))  # idempotent
    assert again == m.RegisterChanged(again.caller, "REGISTERED", WORKER, "UNEMPLOYED", D(2025, 1, 1), D(2025, 6, 30))
    refused = register(app, "ONEM", "INSURED", D(2025, 1, 1))
    assert isinstance(refused, m.Refused) and refused.code == "A006"
    with app.engine.connect() as c:
        assert c.execute(select(t.register_entry.c.capacity)).scalars().all() == ["UNEMPLOYED"]
    gone = app.institutions.handle(m.UnregisterPerson(caller("ONEM"), WORKER, "UNEMPLOYED", D(2025, 1, 1)))
    assert gone.operation == "UNREGISTERED" and gone.valid_to == D(2025, 6, 30)
    none = app.institutions.handle(m.UnregisterPerson(caller("ONEM"), WORKER, "UNEMPLOYED", D(2025, 1, 1)))
    assert isinstance(none, m.Refused) and none.code == "A001"
    outcomes = [(r.operation, r.outcome) for r in log_rows(app)]
    assert outcomes == [("RegisterPerson", "GRANTED"), ("RegisterPerson", "GRANTED"), ("RegisterPerson", "A006"),
                        ("UnregisterPerson", "GRANTED"), ("UnregisterPerson", "A001")]


# --- Consult -------------------------------------------------------------------------

def test_consult_dimona_cut_to_the_register_period(app, demo_signer):
    signer = demo_signer("sender-1001")
    assert submit(app, signer, hire("h1", start=D(2025, 3, 1), end=D(2025, 10, 31))).accepted
    register(app, "ONEM", "UNEMPLOYED", D(2025, 6, 1), D(2025, 8, 31))
    answer = consult(app, "ONEM", "DIMONA", D(2025, 1, 1), D(2025, 12, 31))
    assert isinstance(answer, m.ConsultResult), answer
    assert [(g.start, g.end, g.capacity) for g in answer.granted] == [(D(2025, 6, 1), D(2025, 8, 31), "UNEMPLOYED")]
    assert [(p.start, p.end, p.employer_noss) for p in answer.periods] == [(D(2025, 6, 1), D(2025, 8, 31),
                                                                           "123456749")]
    entry = log_rows(app)[-1]
    assert (entry.operation, entry.outcome, entry.inss, entry.data_type, entry.window, entry.authorization) == \
        ("Consult", "GRANTED", WORKER, "DIMONA", "2025-01-01/2025-12-31", "UNEMPLOYED:DIMONA")


def test_consult_current_data_only_no_cancelled_no_test(app, demo_signer):
    signer = demo_signer("sender-1001")
    kept = submit(app, signer, hire("h-kept", start=D(2025, 3, 1), end=D(2025, 3, 31)))
    gone = submit(app, signer, hire("h-gone", start=D(2025, 5, 1), end=D(2025, 5, 31)))
    assert submit(app, signer, samples.dimona("Cancel", message_id="c-gone", **EMPLOYER,
                                              PeriodId=gone.period_id)).accepted
    assert submit(app, signer, hire("h-test", start=D(2025, 7, 1), end=D(2025, 7, 31), environment="TEST")).accepted
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    answer = consult(app, "ONEM", "DIMONA", D(2025, 1, 1), D(2025, 12, 31))
    assert [p.period_id for p in answer.periods] == [kept.period_id]


def test_consult_a_period_across_two_register_entries_comes_back_in_two_pieces(app, demo_signer):
    signer = demo_signer("sender-1001")
    hired = submit(app, signer, hire("h1", start=D(2025, 1, 1)))   # open-ended
    register(app, "ONEM", "UNEMPLOYED", D(2025, 2, 1), D(2025, 2, 28))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 2, 15), D(2025, 3, 31))   # overlaps the first: the union counts
    register(app, "ONEM", "UNEMPLOYED", D(2025, 6, 1))
    answer = consult(app, "ONEM", "DIMONA", D(2025, 1, 1), D(2025, 6, 30))
    assert [(p.period_id, p.start, p.end) for p in answer.periods] == [
        (hired.period_id, D(2025, 2, 1), D(2025, 3, 31)), (hired.period_id, D(2025, 6, 1), D(2025, 6, 30))]
    assert len(answer.granted) == 3


def test_consult_dmfa_current_declaration_only_cut_to_the_quarters(app, demo_signer):
    signer = demo_signer("sender-1001")
    first = submit(app, signer, dmfa("q2", quarter="20252", workers=(WORKER, OTHER), pay=800000))
    assert first.accepted, first.anomalies
    original = submit(app, signer, dmfa("q3", quarter="20253", workers=(WORKER, OTHER)))
    replacement = submit(app, signer, dmfa("q3r", quarter="20253", workers=(WORKER,), declaration_type="REPLACEMENT",
                                           replaces=original.declaration_id, pay=910000))
    assert replacement.accepted, replacement.anomalies
    test_only = submit(app, signer, dmfa("q1t", quarter="20251", environment="TEST"))
    assert test_only.accepted, test_only.anomalies
    register(app, "INAMI", "INSURED", D(2025, 5, 1))
    answer = consult(app, "INAMI", "DMFA", D(2025, 1, 1), D(2025, 12, 31))
    assert [(q.declaration_id, q.year, q.quarter) for q in answer.quarters] == [
        (first.declaration_id, 2025, 2), (replacement.declaration_id, 2025, 3)]
    q2, q3 = answer.quarters
    # the open-ended occupation is the quarter's: cut to the granted days of that quarter, not beyond it
    assert (q2.occupations[0].start, q2.occupations[0].end) == (D(2025, 5, 1), D(2025, 6, 30))
    assert [r.amount for r in q3.occupations[0].remunerations] == [910000]
    assert [s.code for s in q3.occupations[0].services] == ["001"]
    # a window inside one quarter: that quarter only
    only_q3 = consult(app, "INAMI", "DMFA", D(2025, 8, 1), D(2025, 8, 31))
    assert [q.quarter for q in only_q3.quarters] == [3]
    assert (only_q3.quarters[0].occupations[0].start, only_q3.quarters[0].occupations[0].end) == \
        (D(2025, 8, 1), D(2025, 8, 31))


def test_consult_social_risks_of_the_sector_with_event_date_in_the_window(app, demo_signer):
    signer = demo_signer("sender-1001")
    assert submit(app, signer, hire("h1", start=D(2025, 10, 1))).accepted
    head = dict(**EMPLOYER, inss=WORKER)
    inside = submit(app, signer, samples.social_risk("Resumption", message_id="r1", event_date=D(2025, 11, 12),
                                                     PartTime=True, **head))
    outside = submit(app, signer, samples.social_risk("Resumption", message_id="r2", event_date=D(2025, 10, 20),
                                                      PartTime=False, **head))
    unemployment = submit(app, signer, samples.social_risk(
        "TemporaryUnemploymentStart", message_id="u1", event_date=D(2025, 11, 13), Reason="ECONOMIC", **head))
    test_risk = submit(app, signer, samples.social_risk("Resumption", message_id="r3", event_date=D(2025, 11, 14),
                                                        PartTime=True, environment="TEST", **head))
    assert all(o.accepted for o in (inside, outside, unemployment, test_risk)), \
        [o.anomalies for o in (inside, outside, unemployment, test_risk)]
    register(app, "INAMI", "INSURED", D(2025, 11, 1))
    answer = consult(app, "INAMI", "DRS_HEALTH", D(2025, 10, 1), D(2025, 11, 30))
    assert [(r.declaration_id, r.scenario, r.details) for r in answer.social_risks] == [
        (inside.declaration_id, "HEALTH-2", (("PartTime", "true"),))]
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    unemp = consult(app, "ONEM", "DRS_UNEMPLOYMENT", D(2025, 1, 1), D(2025, 12, 31))
    assert [r.declaration_id for r in unemp.social_risks] == [unemployment.declaration_id]


def test_refusals_are_answers_and_are_logged(app):
    register(app, "ONEM", "UNEMPLOYED", D(2025, 3, 1), D(2025, 6, 30))
    register(app, "INAMI", "INSURED", D(2025, 1, 1))
    a001 = consult(app, "FEDRIS", "DMFA", D(2025, 1, 1), D(2025, 12, 31))              # person outside the register
    a002 = consult(app, "INAMI", "DIMONA", D(2025, 1, 1), D(2025, 12, 31))             # capacity without authorization
    a003 = consult(app, "ONEM", "DIMONA", D(2025, 7, 1), D(2025, 12, 31))              # window outside the period
    granted = consult(app, "ONEM", "DIMONA", D(2025, 1, 1), D(2025, 12, 31), message_id="once")
    a005 = consult(app, "ONEM", "DIMONA", D(2025, 1, 1), D(2025, 12, 31), message_id="once")  # replayed MessageId
    other_institution = consult(app, "INAMI", "DMFA", D(2025, 1, 1), D(2025, 12, 31), message_id="once")
    a004 = app.institutions.refuse_unauthenticated("Consult", caller("ONEM", "forged"), "signature invalid")
    assert [a.code for a in (a001, a002, a003, a005, a004)] == ["A001", "A002", "A003", "A005", "A004"]
    assert all(isinstance(a, m.Refused) and a.message for a in (a001, a002, a003, a005, a004))
    assert isinstance(granted, m.ConsultResult) and isinstance(other_institution, m.ConsultResult)
    rows = log_rows(app)[2:]
    assert [(r.institution_id, r.outcome) for r in rows] == [
        ("FEDRIS", "A001"), ("INAMI", "A002"), ("ONEM", "A003"), ("ONEM", "GRANTED"), ("ONEM", "A005"),
        ("INAMI", "GRANTED"), ("ONEM", "A004")]
    assert rows[4].message_id == "once" and rows[6].message_id == "forged"
    assert all(r.inss == WORKER for r in rows[:6])


def test_subscribe_needs_an_authorization_for_the_data_type(app):
    assert app.institutions.handle(m.Subscribe(caller("INAMI"), "DIMONA")).code == "A006"
    assert app.institutions.handle(m.Subscribe(caller("INAMI"), "DRS_HEALTH")).operation == "SUBSCRIBED"
    assert app.institutions.handle(m.Unsubscribe(caller("INAMI"), "DRS_HEALTH")).operation == "UNSUBSCRIBED"


# --- notifications ---------------------------------------------------------------------

def notifications(app, institution="ONEM", after=0, max=100):
    return app.institutions.handle(m.GetNotifications(caller(institution), after, max))


def test_notifications_for_subscribed_and_registered_persons_only(app, demo_signer):
    signer = demo_signer("sender-1001")
    app.institutions.handle(m.Subscribe(caller("ONEM"), "DIMONA"))
    app.institutions.handle(m.Subscribe(caller("ONEM"), "DMFA"))
    app.institutions.handle(m.Subscribe(caller("INAMI"), "DMFA"))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    register(app, "INAMI", "INSURED", D(2026, 1, 1))                  # registered, but not for these dates
    register(app, "ONVA", "HOLIDAY_PAY_BENEFICIARY", D(2025, 1, 1))   # registered, not subscribed
    hired = submit(app, signer, hire("h1", start=D(2025, 3, 1)))
    submit(app, signer, hire("h-other", inss=OTHER, start=D(2025, 3, 1)))       # not in anyone's register
    submit(app, signer, hire("h-test", start=D(2025, 9, 1), end=D(2025, 9, 5), environment="TEST"))
    submit(app, signer, samples.dimona("Out", message_id="o1", **EMPLOYER, PeriodId=hired.period_id,
                                       EndingDate=D(2025, 8, 31)))
    submit(app, signer, samples.dimona("Cancel", message_id="c1", **EMPLOYER, PeriodId=hired.period_id))
    original = submit(app, signer, dmfa("q3", workers=(WORKER, OTHER)))
    replacement = submit(app, signer, dmfa("q3r", workers=(OTHER,), declaration_type="REPLACEMENT",
                                           replaces=original.declaration_id))
    assert replacement.accepted, replacement.anomalies
    batch = notifications(app)
    assert [(n.sequence, n.inss, n.data_type, n.change, n.declaration_id) for n in batch.notifications] == [
        (1, WORKER, "DIMONA", "NEW", hired.declaration_id),
        (2, WORKER, "DIMONA", "UPDATED", hired.declaration_id + 3),
        (3, WORKER, "DIMONA", "CANCELLED", hired.declaration_id + 4),
        (4, WORKER, "DMFA", "NEW", original.declaration_id),
        (5, WORKER, "DMFA", "REPLACED", replacement.declaration_id)]   # dropped by the replacement: REPLACED too
    assert (batch.notifications[1].start, batch.notifications[1].end) == (D(2025, 3, 1), D(2025, 8, 31))
    assert (batch.notifications[3].start, batch.notifications[3].end) == (D(2025, 7, 1), D(2025, 9, 30))
    assert batch.last_sequence == 5
    assert notifications(app, "INAMI").notifications == ()
    assert notifications(app, "ONVA").notifications == ()


def test_social_risk_notifies_the_sector_data_type(app, demo_signer):
    signer = demo_signer("sender-1001")
    app.institutions.handle(m.Subscribe(caller("INAMI"), "DRS_HEALTH"))
    app.institutions.handle(m.Subscribe(caller("ONEM"), "DRS_UNEMPLOYMENT"))
    register(app, "INAMI", "INSURED", D(2025, 1, 1))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    assert submit(app, signer, hire("h1", start=D(2025, 10, 1))).accepted
    risk = submit(app, signer, samples.social_risk("Resumption", message_id="r1", **EMPLOYER, inss=WORKER,
                                                   event_date=D(2025, 11, 12), PartTime=True))
    assert risk.accepted
    got = notifications(app, "INAMI").notifications
    assert [(n.data_type, n.change, n.declaration_id, n.start, n.end) for n in got] == [
        ("DRS_HEALTH", "NEW", risk.declaration_id, D(2025, 11, 12), D(2025, 11, 12))]
    assert notifications(app, "ONEM").notifications == ()


def test_get_notifications_in_order_and_again_until_confirmed(app, demo_signer):
    signer = demo_signer("sender-1001")
    app.institutions.handle(m.Subscribe(caller("ONEM"), "DIMONA"))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    for n in range(5):
        assert submit(app, signer, hire(f"h{n}", start=D(2025, 1 + 2 * n, 1), end=D(2025, 2 + 2 * n, 1))).accepted
    first = notifications(app, after=0, max=2)
    assert [n.sequence for n in first.notifications] == [1, 2] and first.last_sequence == 5
    # the institution crashed before processing them: the same AfterSequence gets the same ones again
    assert notifications(app, after=0, max=2).notifications == first.notifications
    rest = notifications(app, after=2, max=100)
    assert [n.sequence for n in rest.notifications] == [3, 4, 5]
    assert notifications(app, after=5).notifications == ()
    entries = [r for r in log_rows(app) if r.operation == "GetNotifications"]
    assert [r.detail for r in entries] == ["sequences 1-2 (2) after 0", "sequences 1-2 (2) after 0",
                                           "sequences 3-5 (3) after 2", "none after 5"]


def test_a_refused_declaration_notifies_nobody(app, demo_signer):
    signer = demo_signer("sender-1001")
    app.institutions.handle(m.Subscribe(caller("ONEM"), "DIMONA"))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    assert submit(app, signer, hire("h1", start=D(2025, 3, 1))).accepted
    assert not submit(app, signer, hire("h2", start=D(2025, 3, 5))).accepted   # overlaps: D002
    assert [n.sequence for n in notifications(app).notifications] == [1]


def test_person_log_lists_every_access(app, demo_signer):
    from declarations.services.institutions import person_accesses, verify_log

    signer = demo_signer("sender-1001")
    app.institutions.handle(m.Subscribe(caller("ONEM"), "DIMONA"))
    register(app, "ONEM", "UNEMPLOYED", D(2025, 1, 1))
    submit(app, signer, hire("h1", start=D(2025, 3, 1)))
    consult(app, "ONEM", "DIMONA", D(2025, 1, 1), D(2025, 12, 31))
    consult(app, "INAMI", "DIMONA", D(2025, 1, 1), D(2025, 12, 31))
    notifications(app)
    accesses = person_accesses(app.engine, WORKER)
    assert [(a.institution_id, a.operation, a.outcome, a.authorization) for a in accesses] == [
        ("ONEM", "RegisterPerson", "GRANTED", "UNEMPLOYED"),
        ("ONEM", "Consult", "GRANTED", "UNEMPLOYED:DIMONA"),
        ("INAMI", "Consult", "A001", None),
        ("ONEM", "GetNotifications", "GRANTED", "UNEMPLOYED:DIMONA")]
    assert person_accesses(app.engine, OTHER) == []
    check = verify_log(app.engine)
    assert check.first_broken is None and check.entries == 5   # Subscribe, Register, 2 Consults, GetNotifications


def test_a_test_replacement_does_not_hide_the_prod_dmfa_from_consult(app, demo_signer):
    signer = demo_signer("sender-1001")
    original = submit(app, signer, dmfa("q3", workers=(WORKER,)))
    simulated = submit(app, signer, dmfa("q3t", workers=(WORKER,), declaration_type="REPLACEMENT",
                                         replaces=original.declaration_id, environment="TEST", pay=1))
    assert simulated.accepted, simulated.anomalies
    register(app, "INAMI", "INSURED", D(2025, 1, 1))
    answer = consult(app, "INAMI", "DMFA", D(2025, 7, 1), D(2025, 9, 30))
    assert [q.declaration_id for q in answer.quarters] == [original.declaration_id]
