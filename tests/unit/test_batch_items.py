"""The batch's item scheduler (services/batch_items.py): which items may run at once, and in what order."""

from __future__ import annotations

import concurrent.futures as futures
import datetime as dt
import threading
import time

from declarations import samples
from declarations.services.batch_items import ALONE, Items, conflict_keys

A = dict(sender_id="2001", noss="555123433")
DAY = dt.date(2025, 11, 15)


def test_conflict_keys():
    inss = samples.inss_series(1)[0]
    dmfa = samples.dmfa(message_id="m-1", **A, quarter="20253", workers=[
        samples.worker(inss, sequence=1, occupations=[samples.occupation(start=dt.date(2025, 7, 1))])])
    assert conflict_keys(dmfa) == {"employer:555123433", "message:m-1"}
    hire = samples.dimona("In", message_id="m-2", **A, INSS=inss, StartingDate=DAY, JointCommissionNbr="302",
                          WorkerType="OTH")
    assert conflict_keys(hire) == {"employer:555123433", "message:m-2"}
    # A student's hours count across employers; an Out/Update/Cancel's period may be a student's.
    student = samples.dimona("In", message_id="m-3", **A, INSS=inss, StartingDate=DAY, JointCommissionNbr="302",
                             WorkerType="STU", EndingDate=DAY, PlannedHoursNbr=8)
    leave = samples.dimona("Out", message_id="m-4", **A, PeriodId=7, EndingDate=DAY)
    assert conflict_keys(student) == conflict_keys(leave) == {ALONE}
    unreadable = samples.dimona("Out", message_id="m-5", **A, PeriodId=7, EndingDate=DAY)
    unreadable.remove(unreadable[1])  # no Employer
    assert conflict_keys(unreadable) == {ALONE}


class Recorder:
    """A stand-in for deciding an item: records when each one ran."""

    def __init__(self):
        self.spans: dict[int, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def __call__(self, position: int, data: bytes) -> tuple[int, str]:
        begin = time.monotonic()
        time.sleep(0.05)
        with self.lock:
            self.spans[position] = (begin, time.monotonic())
        return position, "ACCEPTED"

    def overlap(self, a: int, b: int) -> bool:
        (a0, a1), (b0, b1) = self.spans[a], self.spans[b]
        return a0 < b1 and b0 < a1


def run(keys: list[set[str]]) -> tuple[Recorder, list[int]]:
    recorder = Recorder()
    with futures.ThreadPoolExecutor(max_workers=3) as pool:
        items = Items(pool, recorder, in_flight=3, local=False)
        done = []
        for position, item_keys in enumerate(keys, 1):
            done += [p for p, _ in items.submit(frozenset(item_keys), position, b"", None)]
        done += [p for p, _ in items.finish()]
    return recorder, done


def test_items_of_different_employers_run_at_once_those_of_one_employer_in_file_order():
    recorder, done = run([{"employer:A", "message:1"}, {"employer:B", "message:2"}, {"employer:A", "message:3"},
                          {"employer:C", "message:4"}])
    assert sorted(done) == [1, 2, 3, 4]
    assert recorder.overlap(1, 2) and recorder.overlap(3, 4)
    assert recorder.spans[1][1] <= recorder.spans[3][0]  # A's second item after its first


def test_an_item_alone_waits_for_all_and_nothing_runs_beside_it():
    recorder, _ = run([{"employer:A"}, {"employer:B"}, {ALONE}, {"employer:C"}, {"message:1"}])
    assert recorder.overlap(1, 2)
    assert not any(recorder.overlap(3, other) for other in (1, 2, 4, 5))
    assert recorder.overlap(4, 5)


def test_a_shared_message_key_orders_items_of_different_employers():
    recorder, _ = run([{"employer:A", "message:1"}, {"employer:B", "message:1"}])
    assert recorder.spans[1][1] <= recorder.spans[2][0]


def test_a_failed_item_raises_after_the_running_ones_finish():
    finished = []

    def call(position, data):
        if position == 2:
            raise RuntimeError("boom")
        time.sleep(0.05)
        finished.append(position)
        return position, "ACCEPTED"

    with futures.ThreadPoolExecutor(max_workers=2) as pool:
        items = Items(pool, call, in_flight=2, local=False)
        done = []
        try:
            for position in (1, 2, 3):
                done += [p for p, _ in items.submit(frozenset({f"employer:{position}"}), position, b"", None)]
            done += [p for p, _ in items.finish()]
        except RuntimeError as error:
            assert str(error) == "boom"
            assert 1 in finished  # item 1 was running beside item 2: it was let finish first
        else:
            raise AssertionError("the failure was not raised")
