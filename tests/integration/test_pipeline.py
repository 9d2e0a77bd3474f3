"""The pipeline's storage behaviour, on SQLite and PostgreSQL (the ``app`` fixture).

Per-code fixture cases live in test_fixture_cases.py; this module checks what
is stored: once, versioned, replaced, derived, isolated, idempotent.
"""

from __future__ import annotations

import datetime as dt
import threading

import xmlschema
from sqlalchemy import func, select

from declarations import samples
from declarations.store import tables as t
from declarations.xmlio import schemas
from declarations.xmlio.signature import verify

EMPLOYER = dict(sender_id="1001", noss="123456749", enterprise_nbr="0403179609")
WORKER = "85073100130"
Q3 = dict(first=dt.date(2025, 7, 1), last=dt.date(2025, 9, 30))


def submit(app, signer, element):
    return app.ingest.submit(samples.to_bytes(signer.sign(element)), channel="CLI")


def hire(message_id, **values):
    fields = dict(INSS=WORKER, StartingDate=dt.date(2025, 11, 15), JointCommissionNbr="302", WorkerType="OTH")
    fields.update(values)
    return samples.dimona("In", message_id=message_id, **EMPLOYER, **fields)


def count(app, table):
    with app.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def q3_dmfa(message_id, *, pay=900000, declaration_type="ORIGINAL", replaces=None, quarter="20253",
            start=Q3["first"], environment="PROD"):
    return samples.dmfa(message_id=message_id, **EMPLOYER, quarter=quarter, declaration_type=declaration_type,
                        replaces=replaces, environment=environment, workers=[samples.worker(WORKER, sequence=1, occupations=[
                            samples.occupation(start=start, jc="302", mean=1900, ref=3800,
                                               services=[("001", 3000)], remuns=[("001", pay), ("002", 10000)])])])


def test_the_same_file_twice_gives_the_same_declaration_and_stores_nothing_new(app, demo_signer):
    data = samples.to_bytes(demo_signer("sender-1001").sign(hire("m-1")))
    first = app.ingest.submit(data, channel="CLI")
    rows = count(app, t.declaration), count(app, t.employment_period)
    again = app.ingest.submit(data, channel="CLI")
    assert (again.outcome.declaration_id, again.outcome.received_at) == \
        (first.outcome.declaration_id, first.outcome.received_at)
    assert again.retry and again.result_bytes == first.result_bytes
    assert (count(app, t.declaration), count(app, t.employment_period)) == rows == (1, 1)


def test_re_signed_same_content_is_a_retry_and_other_content_is_C006(app, demo_signer):
    signer = demo_signer("sender-2001")  # ECDSA: every signature differs
    element = samples.dimona("In", message_id="m-ec", sender_id="2001", noss="555123433", INSS=WORKER,
                             StartingDate=dt.date(2025, 11, 20), JointCommissionNbr="200", WorkerType="OTH")
    first = submit(app, signer, element)
    assert first.outcome.status == "ACCEPTED"
    assert submit(app, signer, element).outcome.declaration_id == first.outcome.declaration_id
    other = samples.dimona("In", message_id="m-ec", sender_id="2001", noss="555123433", INSS=WORKER,
                           StartingDate=dt.date(2025, 11, 21), JointCommissionNbr="200", WorkerType="OTH")
    reused = submit(app, signer, other)
    assert [a.code for a in reused.outcome.anomalies] == ["C006"]
    assert reused.outcome.declaration_id != first.outcome.declaration_id  # archived, traceable


def test_dimona_in_out_update_cancel(app, demo_signer):
    signer = demo_signer("sender-1001")
    period_id = submit(app, signer, hire("in")).outcome.period_id
    assert period_id == 1
    out = submit(app, signer, samples.dimona("Out", message_id="out", **EMPLOYER, PeriodId=period_id,
                                             EndingDate=dt.date(2025, 12, 31)))
    assert out.outcome.status == "ACCEPTED"
    update = submit(app, signer, samples.dimona("Update", message_id="upd", **EMPLOYER, PeriodId=period_id,
                                                JointCommissionNbr="302.01"))
    assert update.outcome.status == "ACCEPTED"
    cancel = submit(app, signer, samples.dimona("Cancel", message_id="cancel", **EMPLOYER, PeriodId=period_id))
    assert cancel.outcome.status == "ACCEPTED"
    with app.engine.connect() as c:
        period = c.execute(select(t.employment_period)).one()
        versions = c.execute(select(t.employment_period_version.c.version, t.employment_period_version.c.action,
                                    t.employment_period_version.c.ending_date,
                                    t.employment_period_version.c.joint_commission)
                             .order_by(t.employment_period_version.c.version)).all()
    assert (period.cancelled, period.ending_date, period.joint_commission, period.version) == \
        (True, dt.date(2025, 12, 31), "302.01", 4)
    assert [(v.action, v.ending_date, v.joint_commission) for v in versions] == [
        ("IN", None, "302"), ("OUT", dt.date(2025, 12, 31), "302"), ("UPDATE", dt.date(2025, 12, 31), "302.01"),
        ("CANCEL", dt.date(2025, 12, 31), "302.01")]
    again = submit(app, signer, samples.dimona("Out", message_id="out-2", **EMPLOYER, PeriodId=period_id,
                                               EndingDate=dt.date(2025, 12, 30)))
    assert [a.code for a in again.outcome.anomalies] == ["D004"]
    # the cancelled period no longer blocks a new one
    assert submit(app, signer, hire("in-2")).outcome.accepted


def test_dmfa_replacement_replaces(app, demo_signer):
    signer = demo_signer("sender-1001")
    original = submit(app, signer, q3_dmfa("d-1"))
    assert original.outcome.status == "ACCEPTED_WITH_WARNINGS"  # M010: no Dimona covers it
    replacement = submit(app, signer, q3_dmfa("d-2", pay=950000, declaration_type="REPLACEMENT",
                                              replaces=original.outcome.declaration_id))
    assert replacement.outcome.accepted
    with app.engine.connect() as c:
        rows = {r.declaration_id: r for r in c.execute(select(t.dmfa))}
        o = t.dmfa_occupation
        remuns = [(r.declaration_id, amount) for r in c.execute(select(o))
                  for code, amount in zip(r.remuneration_codes, r.remuneration_amounts) if code == "001"]
    first, second = rows[original.outcome.declaration_id], rows[replacement.outcome.declaration_id]
    assert (first.is_current, first.replaced_by_declaration_id) == (False, second.declaration_id)
    assert (second.is_current, second.replaces_declaration_id) == (True, first.declaration_id)
    assert sorted(remuns) == sorted([(first.declaration_id, 900000), (second.declaration_id, 950000)])
    stale = submit(app, signer, q3_dmfa("d-3", declaration_type="REPLACEMENT", replaces=first.declaration_id))
    assert [a.code for a in stale.outcome.anomalies if a.severity.value == "BLOCKING"] == ["M003"]


def test_a_test_replacement_leaves_the_prod_dmfa_current(app, demo_signer):
    signer = demo_signer("sender-1001")
    original = submit(app, signer, q3_dmfa("p-1")).outcome.declaration_id
    rehearsal = submit(app, signer, q3_dmfa("t-1", pay=1, declaration_type="REPLACEMENT", replaces=original,
                                            environment="TEST"))
    assert rehearsal.outcome.accepted, rehearsal.outcome.anomalies
    with app.engine.connect() as c:
        prod = c.execute(select(t.dmfa).where(t.dmfa.c.declaration_id == original)).one()
    assert (prod.is_current, prod.replaced_by_declaration_id) == (True, None)
    # the sender's TEST flow sees its rehearsal as current: replacing the PROD one again is M003 there...
    again = submit(app, signer, q3_dmfa("t-2", pay=2, declaration_type="REPLACEMENT", replaces=original,
                                        environment="TEST"))
    assert "M003" in [a.code for a in again.outcome.anomalies]
    # ...and PROD still replaces its own current DmfA
    real = submit(app, signer, q3_dmfa("p-2", pay=950000, declaration_type="REPLACEMENT", replaces=original))
    assert real.outcome.accepted, real.outcome.anomalies


def test_social_risk_reference_data_is_derived_from_stored_dmfa(app, demo_signer):
    signer = demo_signer("sender-1001")
    assert submit(app, signer, hire("in", StartingDate=dt.date(2025, 4, 1))).outcome.accepted
    assert submit(app, signer, q3_dmfa("q2", pay=800001, quarter="20252", start=dt.date(2025, 4, 1))).outcome.accepted
    assert submit(app, signer, q3_dmfa("q3", pay=900000)).outcome.accepted
    risk = samples.social_risk("Incapacity", message_id="sick", **EMPLOYER, inss=WORKER,
                               event_date=dt.date(2025, 11, 10), LastDayWorked=dt.date(2025, 11, 7))
    receipt = submit(app, signer, risk)
    assert receipt.outcome.status == "ACCEPTED", receipt.outcome.anomalies
    with app.engine.connect() as c:
        row = c.execute(select(t.social_risk)).one()
    # mean of (800001 + 10000) and (900000 + 10000) = 860000.5 -> half up
    assert (row.ref_quarterly_gross_remun, row.ref_working_time_fraction, row.ref_joint_commission,
            row.reference_source) == (860001, 5000, "302", "DERIVED")


def test_test_environment_is_invisible_to_prod(app, demo_signer):
    signer = demo_signer("sender-1001")
    rehearsal = submit(app, signer, samples.dimona(
        "In", message_id="t-in", **EMPLOYER, environment="TEST", INSS=WORKER, StartingDate=dt.date(2025, 11, 15),
        JointCommissionNbr="302", WorkerType="OTH"))
    assert rehearsal.outcome.status == "ACCEPTED"
    # the same sender's TEST flow sees its TEST period...
    overlap = submit(app, signer, samples.dimona(
        "In", message_id="t-in-2", **EMPLOYER, environment="TEST", INSS=WORKER, StartingDate=dt.date(2025, 11, 16),
        JointCommissionNbr="302", WorkerType="OTH"))
    assert [a.code for a in overlap.outcome.anomalies] == ["D002"]
    # ...PROD does not
    assert submit(app, signer, hire("p-in")).outcome.status == "ACCEPTED"
    with app.engine.connect() as c:
        scopes = sorted(c.execute(select(t.employment_period.c.scope)).scalars())
    assert scopes == ["PROD", "TEST:1001"]


def test_concurrent_submissions_of_one_message_store_it_once(app, demo_signer):
    data = samples.to_bytes(demo_signer("sender-1001").sign(hire("race")))
    results, barrier = [], threading.Barrier(4)

    def worker():
        barrier.wait()
        results.append(app.ingest.submit(data, channel="CLI").outcome.declaration_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert count(app, t.employment_period) == 1 and count(app, t.message_key) == 1


def test_receipts_are_signed_by_the_engine_and_valid(app, demo_signer):
    receipt = submit(app, demo_signer("sender-1001"), hire("signed"))
    verified = verify(receipt.signed_result)
    assert verified.fingerprint == app.signer.fingerprint
    assert schemas.problems(receipt.signed_result) == []
    xmlschema.XMLSchema(str(schemas.XSD_DIR / "result.xsd")).validate(receipt.result_bytes.decode())


def test_refused_messages_are_archived_unchanged(app):
    garbage = b"<Dimona xmlns='urn:declarations:dimona:v1'><unclosed></Dimona>"
    receipt = app.ingest.submit(garbage, channel="CLI")
    assert [a.code for a in receipt.outcome.anomalies] == ["C009"]
    with app.engine.connect() as c:
        row = c.execute(select(t.declaration).where(t.declaration.c.id == receipt.outcome.declaration_id)).one()
    assert (row.original, row.status) == (garbage, "REFUSED")
    assert row.result == receipt.result_bytes


def test_large_messages_are_archived_compressed_and_read_back_unchanged(app, demo_signer):
    """store/originals.py: from 32 KiB up the archive keeps a zlib stream, before the transaction; what the
    archive gives back is the message byte for byte, accepted or refused, small or large."""
    from declarations.services.archive import archived
    from declarations.store import originals

    signer = demo_signer("sender-1001")
    workers = [samples.worker(inss, sequence=n, occupations=[samples.occupation(
        start=Q3["first"], jc="302", mean=1900, ref=3800, services=[("001", 3000)], remuns=[("001", 900000 + n)])])
        for n, inss in enumerate(samples.inss_series(80), 1)]
    large = samples.to_bytes(signer.sign(samples.dmfa(message_id="big-1", **EMPLOYER, quarter="20253",
                                                      workers=workers)))
    garbage = b"<DmfA xmlns='urn:declarations:dmfa:v1'>" + b"<x/>" * 10000  # never closed: refused, C009
    small = samples.to_bytes(signer.sign(hire("small-1")))
    assert len(large) >= originals.COMPRESS_FROM and len(garbage) >= originals.COMPRESS_FROM
    assert len(small) < originals.COMPRESS_FROM
    expected = {}
    for message, accepted in ((large, True), (garbage, False), (small, True)):
        receipt = app.ingest.submit(message, channel="CLI")
        assert receipt.outcome.accepted is accepted, receipt.outcome.anomalies
        expected[receipt.outcome.declaration_id] = message
    with app.engine.connect() as c:
        stored = {row.id: row for row in c.execute(select(t.declaration))}
    for declaration_id, message in expected.items():
        row = stored[declaration_id]
        if len(message) >= originals.COMPRESS_FROM:
            assert row.original_coding == "zlib" and len(row.original) < len(message) // 4
        else:
            assert (row.original_coding, bytes(row.original)) == (None, message)
        assert archived(app.engine, declaration_id).original == message


def test_an_archive_coding_this_engine_does_not_know_is_an_error():
    from declarations.store import originals
    import pytest

    with pytest.raises(ValueError, match="brotli"):
        originals.unpack(b"...", "brotli")
    assert originals.unpack(originals.pack(b"<a/>" * 20000).data, "zlib") == b"<a/>" * 20000


def test_with_a_batch_turn_a_declaration_is_received_when_its_turn_comes(app, demo_signer):
    """``Ingest.submit(turn=...)`` (a batch's worker): the declaration is examined before its turn, but
    received when the turn comes (channels.md: a batch's ack comes before any declaration is processed; a
    head start examines the first items earlier). Its ReceivedAt is the turn's moment, and so is the day of
    its rules: here midnight passes while it waits, and quarter 2025 Q4 is over by the time it is decided
    (no M001)."""
    import contextlib
    import dataclasses

    moments = [dt.datetime(2025, 12, 31, 22, 59, 59, tzinfo=dt.timezone.utc),  # 23:59:59 in Brussels
               dt.datetime(2025, 12, 31, 23, 0, 1, tzinfo=dt.timezone.utc)]    # 00:00:01, 1 January
    waited = []

    @contextlib.contextmanager
    def turn():
        waited.append(True)
        yield

    app.ingest.settings = dataclasses.replace(app.settings, fixed_now=None,
                                              _clock=lambda: moments[1] if waited else moments[0])
    dmfa = q3_dmfa("turn-1", quarter="20254", start=dt.date(2025, 10, 1))
    receipt = app.ingest.submit(samples.to_bytes(demo_signer("sender-1001").sign(dmfa)), channel="BATCH",
                                 turn=turn())
    assert receipt.outcome.accepted, receipt.outcome
    assert "M001" not in {a.code for a in receipt.outcome.anomalies}
    with app.engine.connect() as c:
        received = c.execute(select(t.declaration.c.received_at)).scalar_one()
    assert received.replace(tzinfo=received.tzinfo or dt.timezone.utc) == moments[1]


def _persons_asked_for(app, monkeypatch, submitting) -> tuple:
    """``submitting()``'s receipt, and the workers its DmfA asked to insert into person (PostgreSQL: the
    parameter of store_dmfa's first statement; SQLite: what went to facts._ensure_dmfa_persons)."""
    from sqlalchemy import event

    from declarations.store import facts

    asked = []
    ensure = facts._ensure_dmfa_persons
    monkeypatch.setattr(facts, "_ensure_dmfa_persons", lambda c, workers: (asked.append(sorted(workers)),
                                                                           ensure(c, workers)))

    def sent(_c, _cursor, statement, parameters, *_):
        if "INSERT INTO person" in statement:
            workers = parameters["inss"]
            asked.append(sorted(workers.split(",") if isinstance(workers, str) else workers))

    event.listen(app.engine, "before_cursor_execute", sent)
    try:
        receipt = submitting()
    finally:
        event.remove(app.engine, "before_cursor_execute", sent)
    [workers] = asked
    return receipt, workers


def _q3_dmfa_of(message_id, workers):
    return samples.dmfa(message_id=message_id, **EMPLOYER, quarter="20253", workers=[
        samples.worker(who, sequence=n, occupations=[samples.occupation(start=Q3["first"], jc="302")])
        for n, who in enumerate(workers, 1)])


def test_a_dmfa_puts_in_person_only_the_workers_no_stored_period_has_put_there(app, demo_signer, monkeypatch):
    """M010's question (StoredView.uncovered) finds which workers have a stored period, so are in person (a
    period refers to its worker); the DmfA inserts only the others, and every worker ends in person and in
    dmfa_person. (A worker left out wrongly would fail dmfa_person's check: the DmfA would not be stored.)"""
    signer = demo_signer("sender-1001")
    assert submit(app, signer, hire("h-1", StartingDate=Q3["first"])).outcome.status != "REFUSED"  # (late)
    newcomer = samples.valid_inss(42)
    receipt, asked = _persons_asked_for(app, monkeypatch,
                                        lambda: submit(app, signer, _q3_dmfa_of("d-1", [WORKER, newcomer])))
    assert receipt.outcome.status == "ACCEPTED_WITH_WARNINGS"
    assert [(a.code, a.location) for a in receipt.outcome.anomalies] == [
        ("M010", "/DmfA/NaturalPerson[2]/WorkerRecord[1]/Occupation[1]")]
    assert asked == [newcomer]
    with app.engine.connect() as c:
        assert set(c.execute(select(t.person.c.inss)).scalars()) == {WORKER, newcomer}
        assert sorted(c.execute(select(t.dmfa_person.c.person_nbr, t.dmfa_person.c.inss)).all()) == [
            (1, WORKER), (2, newcomer)]


def test_a_dmfa_whose_workers_all_have_a_stored_period_inserts_no_person(app, demo_signer, monkeypatch):
    """The usual case (the law wants a Dimona before the DmfA): nothing to insert into person, the DmfA
    stored all the same."""
    signer = demo_signer("sender-1001")
    assert submit(app, signer, hire("h-1", StartingDate=Q3["first"])).outcome.status != "REFUSED"  # (late)
    receipt, asked = _persons_asked_for(app, monkeypatch, lambda: submit(app, signer, _q3_dmfa_of("d-1", [WORKER])))
    assert (receipt.outcome.status, asked) == ("ACCEPTED", [])
    with app.engine.connect() as c:
        assert c.execute(select(t.dmfa_person.c.inss)).scalars().all() == [WORKER]
