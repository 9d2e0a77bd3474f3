"""A batch decided on worker processes (docs/batch.md "Parallel items"), on SQLite and PostgreSQL: every
item gets the outcome, the DeclarationId and the PeriodId it gets in file order in one process, whatever
order the workers examine the items in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from declarations import ns, samples
from declarations.bootstrap import App
from declarations.services.batch import process_inbox_once
from declarations.store import batches
from declarations.store import tables as t
from declarations.xmlio import batch_xml, parsing
from deadlines import within  # tests/deadlines.py

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import batch as gen  # noqa: E402

A = dict(sender_id="2001", noss="555123433", enterprise_nbr="0876920184")   # all kinds by 2001
B = dict(sender_id="2001", noss="009988768", enterprise_nbr="1234567894")   # Dimona only by 2001
DAY = dt.date(2025, 11, 15)


def items(signer) -> tuple[list, list[tuple[str, list[str]]]]:
    """A mixed batch whose items depend on earlier ones, and each item's outcome in file order."""
    w = samples.inss_series(6)
    q3 = dt.date(2025, 7, 1)
    dmfa = lambda message_id: samples.dmfa(  # noqa: E731
        message_id=message_id, **A, quarter="20253",
        workers=[samples.worker(w[0], sequence=1, occupations=[samples.occupation(start=q3, jc="302")])])
    dimona = lambda message_id, who, inss, **values: samples.dimona(  # noqa: E731
        "In", message_id=message_id, **who, INSS=inss, StartingDate=values.pop("start", DAY),
        JointCommissionNbr="302", WorkerType=values.pop("type", "OTH"), **values)
    plan = [
        (dimona("p-1", A, w[0]), ("ACCEPTED", [])),
        (dimona("p-2", B, w[1]), ("ACCEPTED", [])),
        (dmfa("p-3"), ("ACCEPTED_WITH_WARNINGS", ["M010"])),      # w0's Dimona starts after the quarter
        (dimona("p-4", B, w[2], type="STU", EndingDate=DAY + dt.timedelta(days=10), PlannedHoursNbr=400),
         ("ACCEPTED", [])),                                         # a student: runs alone
        (dimona("p-5", A, w[0], start=DAY + dt.timedelta(days=3)), ("REFUSED", ["D002"])),  # overlaps p-1
        (dimona("p-6", B, w[3][:-2] + f"{(int(w[3][-2:]) + 1) % 100:02d}"), ("REFUSED", ["C001"])),
        (dmfa("p-7"), ("REFUSED", ["M002", "M010"])),               # p-3 is already the current one
        (dimona("p-2", A, w[4]), ("REFUSED", ["C006"])),            # p-2's MessageId, other content
        (dimona("p-9", A, w[2], type="STU", start=DAY + dt.timedelta(days=20), EndingDate=DAY + dt.timedelta(days=25),
                PlannedHoursNbr=300), ("ACCEPTED_WITH_WARNINGS", ["D008"])),  # 700 h with p-4's, at B
        (dimona("p-10", A, w[5]), ("ACCEPTED", [])),
    ]
    signed = [signer.sign(element) for element, _ in plan]
    signed[9] = plan[9][0]  # unsigned: S001, reserves no message key
    expected = [outcome for _, outcome in plan]
    expected[9] = ("REFUSED", ["S001"])
    return signed, expected


@pytest.fixture
def box(app, tmp_path, request):
    """The engine with its own folders; ``request.param`` worker processes, for any file size."""
    settings = dataclasses.replace(app.settings, inbox=tmp_path / "inbox", outbox=tmp_path / "outbox",
                                   archive=tmp_path / "archive", batch_workers=request.param,
                                   batch_parallel_min_bytes=0)
    application = App(settings)
    yield application
    application.close()


@pytest.mark.parametrize("box", [1, 2], indirect=True, ids=["in-process", "two-workers"])
def test_each_item_gets_its_file_order_outcome(box):
    signed, expected = items(gen.signer_2001())
    gen.put(box.settings.inbox, "mixed", gen.batch_bytes(batch_id="B-mixed", items=signed))
    [summary] = process_inbox_once(box)
    assert summary.outcome == "DONE", summary
    answer = batch_xml.read_answer(parsing.parse((box.settings.outbox / "mixed.result.xml").read_bytes()))
    got = [(r.findtext(f"{{{ns.RESULT}}}Status"),
            sorted({a.findtext(f"{{{ns.RESULT}}}Code") for a in r.iterfind(f"{{{ns.RESULT}}}Anomaly")}))
           for r in answer["results"]]
    assert got == expected
    assert [r.findtext(f"{{{ns.RESULT}}}MessageId") for r in answer["results"]] == \
        ["p-1", "p-2", "p-3", "p-4", "p-5", "p-6", "p-7", "p-2", "p-9", "p-10"]
    ids = [int(r.findtext(f"{{{ns.RESULT}}}DeclarationId")) for r in answer["results"]]
    assert ids == sorted(ids)
    with box.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.batch_item)).scalar_one() == 10
        assert c.execute(select(func.count()).select_from(t.declaration)).scalar_one() == 10
        assert c.execute(select(t.batch.c.items_done)).scalar_one() == 10
        assert c.execute(select(func.count()).select_from(t.dmfa)).scalar_one() == 1


def test_positions_stored_out_of_order(app):
    """After a crash with items in flight, the committed positions need not be a prefix."""
    with app.engine.begin() as c:
        batch_pk = c.execute(t.batch.insert().values(file_sha256="f" * 64, file_name="x.xml", status="RECEIVED",
                                                     items_done=0).returning(t.batch.c.id)).scalar_one()
        declaration = c.execute(t.declaration.insert().values(
            received_at=dt.datetime(2025, 11, 15, tzinfo=dt.timezone.utc), channel="BATCH", original=b"<x/>",
            status="REFUSED", result=b"<r/>").returning(t.declaration.c.id)).scalar_one()
        assert batches.positions_stored(c, batch_pk) == (0, frozenset())
        for position in (1, 2, 3, 5, 7):
            batches.add_item(c, batch_pk, position, declaration)
        assert batches.positions_stored(c, batch_pk) == (3, frozenset({5, 7}))


@pytest.mark.parametrize("box", [1, 2], indirect=True, ids=["in-process", "two-workers"])
def test_ids_follow_file_order_when_a_long_item_comes_first(box):
    """A DmfA of 1,500 workers takes far longer to examine than the Dimona after it: on two workers the
    Dimona are examined first, yet decided after it."""
    signer = gen.signer_2001()
    big = next(gen.dmfa_items(signer, 1500, 1500, prefix="long"))
    hires = [signer.sign(samples.dimona("In", message_id=f"hire-{n}", **B, INSS=inss, StartingDate=DAY,
                                        JointCommissionNbr="302", WorkerType="OTH"))
             for n, inss in enumerate(samples.inss_series(3000)[-3:])]
    gen.put(box.settings.inbox, "long", gen.batch_bytes(batch_id="B-long", items=[big, *hires]))
    [summary] = process_inbox_once(box)
    assert summary.outcome == "DONE", summary
    answer = batch_xml.read_answer(parsing.parse((box.settings.outbox / "long.result.xml").read_bytes()))
    results = answer["results"]
    assert [r.findtext(f"{{{ns.RESULT}}}Status") for r in results] == ["ACCEPTED_WITH_WARNINGS"] + ["ACCEPTED"] * 3
    ids = [int(r.findtext(f"{{{ns.RESULT}}}DeclarationId")) for r in results]
    periods = [int(r.findtext(f"{{{ns.RESULT}}}PeriodId")) for r in results[1:]]
    assert ids == sorted(ids) and periods == sorted(periods)


@pytest.fixture
def head_starts(monkeypatch):
    """What HeadStart did in the batch process: the items handed over at each start, the discards of items
    handed over."""
    from declarations.services.batch_items import HeadStart

    seen = {"handed": [], "discarded": 0}
    start, discard = HeadStart.start, HeadStart.discard

    def spy_start(self, *args):
        start(self, *args)
        seen["handed"].append(self.submitted)

    def spy_discard(self):
        seen["discarded"] += self.runner is not None
        discard(self)

    monkeypatch.setattr(HeadStart, "start", spy_start)
    monkeypatch.setattr(HeadStart, "discard", spy_discard)
    return seen


@pytest.mark.parametrize("box", [1, 2], indirect=True, ids=["in-process", "two-workers"])
def test_a_head_start_is_dropped_when_the_first_pass_finds_the_file_broken(box, head_starts):
    """batch_items.HeadStart: the first items go to the workers once the quick first pass has cut the file,
    behind a closed gate. Here the last declaration is not well-formed (a bare ampersand, which cutting does
    not look for): the workers' checks find it after the head start, the careful way reads the file again
    and refuses it (B002), and nothing handed over early is decided. (In one process there is no head start:
    the same refusal.)"""
    signed, _expected = items(gen.signer_2001())
    data = gen.batch_bytes(batch_id="B-broken", items=signed)
    last = data.rindex(b"<JointCommissionNbr>302<")
    data = data[:last] + b"<JointCommissionNbr>3&02<" + data[last + len(b"<JointCommissionNbr>302<"):]
    gen.put(box.settings.inbox, "broken", data)
    [summary] = process_inbox_once(box)
    assert (summary.outcome, summary.code) == ("FILE_REFUSED", "B002"), summary
    workers = box.settings.batch_workers
    assert head_starts == ({"handed": [4], "discarded": 1} if workers == 2 else {"handed": [], "discarded": 0})
    with box.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.declaration)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(t.batch_item)).scalar_one() == 0


@pytest.mark.parametrize("box", [2], indirect=True, ids=["two-workers"])
def test_a_file_refused_after_its_head_start_stores_nothing(box, head_starts):
    """B006 is known only once the whole file is cut, after the first items went to the workers: none of
    them is decided."""
    signed, _expected = items(gen.signer_2001())
    gen.put(box.settings.inbox, "short", gen.batch_bytes(batch_id="B-short", items=signed, item_count=11))
    [summary] = process_inbox_once(box)
    assert (summary.outcome, summary.code) == ("FILE_REFUSED", "B006")
    assert head_starts == {"handed": [4], "discarded": 1}
    with box.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.declaration)).scalar_one() == 0
    # The inbox keeps working: the same items in a file that says how many there are.
    gen.put(box.settings.inbox, "right", gen.batch_bytes(batch_id="B-right", items=signed))
    [summary] = process_inbox_once(box)
    assert summary.outcome == "DONE" and summary.counts["refused"] == 5


@pytest.mark.parametrize("box", [1, 2], indirect=True, ids=["in-process", "two-workers"])
def test_the_header_s_refusals_come_in_their_order_either_way(box):
    """On workers, what the header asks of the store (the sender, B004; its BatchId, B005) is read, and the ack
    signed, as soon as the quick way has cut the file (Inbox._header_checks), before the workers' last checks
    are in: the refusals still come in the contract's order (B002, B004, B006, B005), as in one process."""
    signed, _expected = items(gen.signer_2001())

    def refused(name: str, data: bytes) -> str:
        gen.put(box.settings.inbox, name, data)
        [summary] = process_inbox_once(box)
        assert summary.outcome == "FILE_REFUSED", summary
        return summary.code

    stranger = gen.batch_bytes(batch_id="B-x", items=signed).replace(b"<SenderId>2001</SenderId>",
                                                                      b"<SenderId>4242</SenderId>", 1)
    assert refused("stranger", stranger) == "B004"
    assert refused("stranger-miscounted", stranger.replace(b"<ItemCount>10</ItemCount>",
                                                           b"<ItemCount>11</ItemCount>")) == "B004"
    last = stranger.rindex(b"<JointCommissionNbr>302<")
    assert refused("stranger-broken", stranger[:last] + b"<JointCommissionNbr>3&02<"
                   + stranger[last + len(b"<JointCommissionNbr>302<"):]) == "B002"
    gen.put(box.settings.inbox, "first", gen.batch_bytes(batch_id="B-once", items=signed[:1]))
    assert [s.outcome for s in process_inbox_once(box)] == ["DONE"]
    again = gen.batch_bytes(batch_id="B-once", items=signed)
    assert refused("again", again) == "B005"
    assert refused("again-miscounted", again.replace(b"<ItemCount>10</ItemCount>", b"<ItemCount>9</ItemCount>")) \
        == "B006"
    with box.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.declaration)).scalar_one() == 1


def test_an_item_is_recorded_only_by_the_batch_s_owner(app):
    """batches.record_item (one statement on PostgreSQL, two on SQLite): the position, one more item
    counted, the lease extended, for the owner of the batch; for anyone else False with nothing counted,
    and the caller rolls the item back (batch_items.decide raises LeaseLost)."""
    with app.engine.begin() as c:
        batch_pk = c.execute(t.batch.insert().values(file_sha256="e" * 64, file_name="y.xml", status="RECEIVED",
                                                     owner="me", lease_until=1.0, items_done=0)
                             .returning(t.batch.c.id)).scalar_one()
        declaration = c.execute(t.declaration.insert().values(
            received_at=dt.datetime(2025, 11, 15, tzinfo=dt.timezone.utc), channel="BATCH", original=b"<x/>",
            status="REFUSED", result=b"<r/>").returning(t.declaration.c.id)).scalar_one()
    with app.engine.begin() as c:
        assert batches.record_item(c, batch_pk, 1, declaration, owner="me", lease_until=99.0) is True
    counted = select(t.batch.c.items_done, t.batch.c.lease_until).where(t.batch.c.id == batch_pk)
    with app.engine.connect() as c:
        with c.begin() as transaction:
            assert batches.record_item(c, batch_pk, 2, declaration, owner="someone else", lease_until=5.0) is False
            assert tuple(c.execute(counted).one()) == (1, 99.0)  # not counted, the lease not moved
            transaction.rollback()  # as decide's LeaseLost does (its position, written on PostgreSQL, goes too)
        assert tuple(c.execute(counted).one()) == (1, 99.0)
        assert batches.positions_stored(c, batch_pk) == (1, frozenset())


def _kill_a_worker_at_its_turn_when_the_first_pass_ends(monkeypatch):
    """At the end of the first pass (its B005 lookup, in the batch process), SIGKILL the first worker that
    reached its turn (an item of the head start, waiting at the closed turns), as the OOM killer would.
    Patched before the workers are forked, so that they note it. Returns the lookup, to put back."""
    import contextlib
    import multiprocessing
    import os
    import signal

    from declarations.services import batch as batch_service
    from declarations.services import batch_items

    at_turn = multiprocessing.get_context("fork").Value("i", 0)  # the pid of the first worker there
    real_turn = batch_items.Turns.turn

    @contextlib.contextmanager
    def turn(self, ticket):
        if at_turn.value == 0:
            at_turn.value = os.getpid()
        with real_turn(self, ticket):
            yield

    lookup = batch_service.batches.find_by_batch_id

    def first_pass_end(*args, **kwargs):
        deadline = time.monotonic() + 10
        while at_turn.value == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert at_turn.value, "no worker reached its turn"
        time.sleep(0.1)  # from its last step to waiting at the turns: microseconds
        os.kill(at_turn.value, signal.SIGKILL)
        time.sleep(0.5)  # the pool notices and terminates the other worker
        return lookup(*args, **kwargs)

    monkeypatch.setattr(batch_items.Turns, "turn", turn)
    monkeypatch.setattr(batch_service.batches, "find_by_batch_id", first_pass_end)
    return lookup


@pytest.mark.parametrize("box", [2], indirect=True, ids=["two-workers"])
def test_a_worker_killed_while_the_head_start_waits_interrupts_the_batch(box, monkeypatch):
    """A worker dies (the OOM killer, kill -9) while the head start's items wait behind the closed turns:
    the batch is INTERRUPTED (docs/batch.md), the batch process does not hang on the dead worker, and
    nothing is stored. Found by the session-7 review: the batch process used to notify the turns' condition,
    which waits for every waiting process to wake."""
    signer = gen.signer_2001()
    gen.put(box.settings.inbox, "k", gen.batch_bytes(batch_id="B-k", items=list(gen.dimona_items(signer, 6))))
    _kill_a_worker_at_its_turn_when_the_first_pass_ends(monkeypatch)
    [summary] = within(30, lambda: process_inbox_once(box), "the batch process hangs")
    assert summary.outcome == "INTERRUPTED"
    with box.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.declaration)).scalar_one() == 0


def _ids(box, name: str) -> list[int]:
    answer = batch_xml.read_answer(parsing.parse((box.settings.outbox / f"{name}.result.xml").read_bytes()))
    return [int(r.findtext(f"{{{ns.RESULT}}}DeclarationId")) for r in answer["results"]]


@pytest.mark.parametrize("box", [2], indirect=True, ids=["two-workers"])
def test_serve_s_workers_take_file_after_file(box):
    """``serve`` keeps its worker processes from one file to the next (batch_items.BatchWorkers): the same
    pool decides the second file, whose tickets start from 1 again, and every id follows file order across
    both files. A file refused whole (B006, after its head start) leaves the pool as usable."""
    from declarations.services.batch_items import BatchWorkers

    signer = gen.signer_2001()
    signed, expected = items(signer)
    workers = BatchWorkers(box, keep=True)
    try:
        workers.start(2)
        pool = workers.kept
        assert pool is not None
        gen.put(box.settings.inbox, "first", gen.batch_bytes(batch_id="B-first", items=signed))
        [summary] = within(60, lambda: process_inbox_once(box, workers=workers), "the batch process hangs")
        assert summary.outcome == "DONE", summary
        assert workers.kept is pool
        gen.put(box.settings.inbox, "short", gen.batch_bytes(batch_id="B-short", items=signed, item_count=11))
        [summary] = within(60, lambda: process_inbox_once(box, workers=workers), "the batch process hangs")
        assert (summary.outcome, summary.code) == ("FILE_REFUSED", "B006")
        assert workers.kept is pool
        hires = list(gen.dimona_items(signer, 6))
        gen.put(box.settings.inbox, "second", gen.batch_bytes(batch_id="B-second", items=hires))
        [summary] = within(60, lambda: process_inbox_once(box, workers=workers), "the batch process hangs")
        assert summary.outcome == "DONE", summary
        assert workers.kept is pool
        answer = batch_xml.read_answer(parsing.parse((box.settings.outbox / "second.result.xml").read_bytes()))
        # The first file hired workers 0 and 2 of the series at this employer already (p-1, p-9).
        assert [[a.findtext(f"{{{ns.RESULT}}}Code") for a in r.iterfind(f"{{{ns.RESULT}}}Anomaly")]
                for r in answer["results"]] == [["D002"], [], ["D002"], [], [], []]
        first, second = _ids(box, "first"), _ids(box, "second")
        assert first == sorted(first) and second == sorted(second) and first[-1] < second[0]
    finally:
        workers.close()
    assert workers.kept is None


@pytest.mark.parametrize("box", [2], indirect=True, ids=["two-workers"])
def test_batch_run_s_workers_go_after_each_file(box, monkeypatch):
    """``batch run`` (batch_items.BatchWorkers, keep=False): each file that needs workers gets its own,
    forked for it. Once a file is done they are stopped in the background (the file does not wait for them
    to exit), and that stop is over before the next file's workers are forked (no fork while an executor's
    threads run) or when the workers are closed; then none is left."""
    import multiprocessing
    import threading

    from declarations.services import batch_items
    from declarations.services.batch_items import BatchWorkers, WorkerPool

    before = set(multiprocessing.active_children())
    release = threading.Event()
    real_shutdown = WorkerPool.shutdown

    def slow_stop(self, *args, **kwargs):  # a stop takes its time (up to 2 s, until the second file's fork)
        release.wait(2)
        real_shutdown(self, *args, **kwargs)

    monkeypatch.setattr(WorkerPool, "shutdown", slow_stop)
    forked, given_back = [], []
    real_start, real_give_back = batch_items.start_workers, BatchWorkers.give_back

    def start_workers(app, count):
        forked.append([t.name for t in threading.enumerate() if t.name == "batch-workers-stop"])
        if len(forked) == 2:
            release.set()  # too late to matter, if the first file's stop was not waited for already
        pool = real_start(app, count)
        forked[-1] = (forked[-1], pool)
        return pool

    def give_back(self, pool, *, clean):
        began = time.monotonic()
        real_give_back(self, pool, clean=clean)
        given_back.append(time.monotonic() - began)

    monkeypatch.setattr(batch_items, "start_workers", start_workers)
    monkeypatch.setattr(BatchWorkers, "give_back", give_back)
    signer = gen.signer_2001()
    signed, _expected = items(signer)
    workers = BatchWorkers(box, keep=False)
    workers.prepare()
    assert set(multiprocessing.active_children()) == before  # prepare forks nothing
    gen.put(box.settings.inbox, "first", gen.batch_bytes(batch_id="B-first", items=signed))
    gen.put(box.settings.inbox, "second", gen.batch_bytes(batch_id="B-second", items=list(gen.dimona_items(signer, 3))))
    try:
        first, second = within(60, lambda: process_inbox_once(box, workers=workers), "the batch process hangs")
        assert (first.outcome, second.outcome) == ("DONE", "DONE")
        assert workers.kept is None
        # The second file's fork came after the first file's stop was over (it took ~2 s: waited for at the
        # fork, so the fork saw no stopping thread), and handing a file's workers back did not wait for it.
        assert [stopping for stopping, _pool in forked] == [[], []]
        assert forked[0][1] is not forked[1][1]
        assert max(given_back) < 1.0, given_back
    finally:
        release.set()
        workers.close()
    assert set(multiprocessing.active_children()) == before


@pytest.mark.parametrize("box", [2], indirect=True, ids=["two-workers"])
def test_serve_starts_new_workers_after_one_died(box, monkeypatch):
    """A worker killed during a file: that file is INTERRUPTED and its pool stopped; the next file gets new
    worker processes and is DONE."""
    from declarations.services import batch as batch_service
    from declarations.services.batch_items import BatchWorkers

    signer = gen.signer_2001()
    lookup = _kill_a_worker_at_its_turn_when_the_first_pass_ends(monkeypatch)
    workers = BatchWorkers(box, keep=True)
    try:
        workers.start(2)
        dead = workers.kept
        gen.put(box.settings.inbox, "k", gen.batch_bytes(batch_id="B-k", items=list(gen.dimona_items(signer, 6))))
        [summary] = within(30, lambda: process_inbox_once(box, workers=workers), "the batch process hangs")
        assert summary.outcome == "INTERRUPTED", summary
        assert workers.kept is None
        monkeypatch.setattr(batch_service.batches, "find_by_batch_id", lookup)
        signed, expected = items(signer)
        gen.put(box.settings.inbox, "after", gen.batch_bytes(batch_id="B-after", items=signed))
        summaries = within(30, lambda: process_inbox_once(box, workers=workers), "the batch process hangs")
        assert [s.outcome for s in summaries if s.file_name == "after.xml"] == ["DONE"], summaries
        assert workers.kept is not None and workers.kept is not dead
    finally:
        workers.close()


def _slow_check(run) -> bool:
    """A first-pass check (batch_scan.well_formed_in_worker) whose first run fails at once (the quick way
    stops, the careful way reads the file) and whose others take their time, noting when they start and end."""
    if run.offset == 0:
        return False
    folder = Path(run.path).parent
    (folder / f"check.{run.offset}.started").touch()
    time.sleep(1)
    (folder / f"check.{run.offset}.ended").touch()
    return True


@pytest.mark.parametrize("box", [2], indirect=True, ids=["two-workers"])
def test_no_first_pass_check_still_runs_when_serve_keeps_the_workers(box, monkeypatch):
    """A file whose quick first pass stopped with checks on the workers: the checks a worker had taken
    already are waited for, so none still runs on the workers kept for the next file (session-8 review)."""
    from declarations.services import batch_items, batch_scan
    from declarations.services.batch_items import BatchWorkers

    monkeypatch.setattr(batch_scan, "RUN_BYTES", 1)  # a run per declaration
    monkeypatch.setattr(batch_scan, "well_formed_in_worker", _slow_check)
    signer = gen.signer_2001()
    workers = BatchWorkers(box, keep=True)
    try:
        workers.start(2)
        gen.put(box.settings.inbox, "one", gen.batch_bytes(batch_id="B-one", items=gen.dimona_items(signer, 2)))
        [summary] = process_inbox_once(box, workers=workers)
        assert summary.outcome == "DONE", summary
        assert workers.kept is not None
        started = {p.name for p in box.settings.archive.glob("check.*.started")}
        ended = {p.name.replace("ended", "started") for p in box.settings.archive.glob("check.*.ended")}
        assert started and started == ended
        monkeypatch.setattr(batch_scan, "well_formed_in_worker", batch_items.well_formed_in_worker)
        gen.put(box.settings.inbox, "two", gen.batch_bytes(batch_id="B-two",
                                                            items=gen.dimona_items(signer, 6, prefix="two")))
        [summary] = process_inbox_once(box, workers=workers)
        assert summary.outcome == "DONE", summary
    finally:
        workers.close()


@pytest.mark.parametrize("box", [2], indirect=True, ids=["two-workers"])
def test_a_file_whose_workers_cannot_start_is_decided_in_the_taking_process(box, monkeypatch, caplog):
    """The system refuses the fork (EAGAIN, out of memory): the file is decided in the taking process,
    slower, and the event says why, rather than the inbox pass failing with the claim left behind."""
    import errno

    from declarations.services import batch_items

    def refused(app, workers):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(batch_items, "start_workers", refused)
    signed, expected = items(gen.signer_2001())
    gen.put(box.settings.inbox, "alone", gen.batch_bytes(batch_id="B-alone", items=signed))
    with caplog.at_level("INFO", logger="declarations.batch"):
        [summary] = process_inbox_once(box)
    assert summary.outcome == "DONE", summary
    assert "batch.workers_unavailable" in caplog.text and "Resource temporarily unavailable" in caplog.text
    answer = batch_xml.read_answer(parsing.parse((box.settings.outbox / "alone.result.xml").read_bytes()))
    assert [r.findtext(f"{{{ns.RESULT}}}Status") for r in answer["results"]] == [status for status, _ in expected]
