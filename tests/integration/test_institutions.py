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
