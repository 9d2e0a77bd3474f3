"""The batch's item runner and turns (services/batch_items.py): items examined side by side, their
transactions one after the other in file order; a failure stops the rest without a hang."""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import random
import threading
import time

import pytest

from declarations.services.batch_items import Items, Turns, TurnsBroken
from deadlines import within  # tests/deadlines.py


class Recorder:
    """A stand-in for deciding an item: 'examines' for a random time, then takes its turn."""

    def __init__(self, turns: Turns, fail: int | None = None, fail_before: int | None = None):
        self.turns, self.fail, self.fail_before = turns, fail, fail_before
        self.decided: list[int] = []
        self.examined: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, ticket: int, position: int, data: bytes) -> tuple[int, str]:
        try:
            return self._decide(ticket, position)
        except BaseException:
            self.turns.break_chain()  # as batch_items._decide_in_worker does
            raise

    def _decide(self, ticket: int, position: int) -> tuple[int, str]:
        time.sleep(random.uniform(0, 0.03))  # the pure stages: any order
        if position == self.fail_before:
            raise RuntimeError("boom before its turn")
        with self.lock:
            self.examined.append(position)
        with self.turns.turn(ticket):
            if position == self.fail:
                raise RuntimeError("boom")
            with self.lock:
                self.decided.append(position)
            time.sleep(0.005)
        return position, "ACCEPTED"


def run(recorder: Recorder, positions: list[int], workers: int = 3) -> list[int]:
    done = []
    with futures.ThreadPoolExecutor(max_workers=workers) as pool:
        items = Items(pool, recorder, in_flight=2 * workers, local=False)
        for position in positions:
            done += [p for p, _ in items.submit(position, b"")]
        done += [p for p, _ in items.finish()]
    return done


def test_transactions_run_in_file_order_whatever_order_the_items_are_examined_in():
    random.seed(4)
    recorder = Recorder(Turns(multiprocessing.get_context("fork")))
    positions = [1, 2, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15]  # a resumed batch: 3, 7 and 8 committed before
    done = run(recorder, positions)
    assert recorder.decided == positions
    assert sorted(done) == positions
    assert recorder.examined != positions  # they were examined out of order meanwhile


def test_a_failed_transaction_stops_the_later_items_and_its_error_is_the_one_raised():
    random.seed(5)
    recorder = Recorder(Turns(multiprocessing.get_context("fork")), fail=5)
    with pytest.raises(RuntimeError, match="boom"):
        run(recorder, list(range(1, 13)))
    assert recorder.decided == [1, 2, 3, 4]  # nothing after the failed one


def test_the_failure_that_broke_the_chain_is_raised_even_when_a_later_item_ends_first():
    """The failed item's future is set a moment after it broke the chain, and a later item's TurnsBroken
    can be collected first (seen once in a full run of the suite): the failure is still the one raised."""
    turns = Turns(multiprocessing.get_context("fork"))

    def call(ticket: int, position: int, data: bytes) -> tuple[int, str]:
        if position == 1:
            turns.break_chain()
            time.sleep(0.2)  # item 2 raises TurnsBroken meanwhile
            raise RuntimeError("the first failure")
        with turns.turn(ticket):
            return position, "ACCEPTED"

    assert _raised_by_two_items(call) == "the first failure"


def _raised_by_two_items(call) -> str:
    """What Items raises for items 1 and 2 run side by side by ``call``."""
    with futures.ThreadPoolExecutor(max_workers=2) as pool:
        items = Items(pool, call, in_flight=2, local=False)
        with pytest.raises(RuntimeError) as raised:
            for position in (1, 2):
                list(items.submit(position, b""))
            list(items.finish())
    return str(raised.value)


def test_of_two_failures_the_first_in_file_order_is_raised():
    """Item 2 fails at once, item 1 a moment later: item 1's failure is the one raised, whichever ended first."""
    def call(ticket: int, position: int, data: bytes) -> tuple[int, str]:
        if position == 1:
            time.sleep(0.2)
        raise RuntimeError(f"failure {position}")

    assert _raised_by_two_items(call) == "failure 1"


def test_an_item_that_fails_before_its_turn_stops_the_later_ones_too():
    random.seed(6)
    recorder = Recorder(Turns(multiprocessing.get_context("fork")), fail_before=5)
    with pytest.raises(RuntimeError, match="boom before its turn"):
        run(recorder, list(range(1, 13)))  # no hang: nobody waits for item 5's turn for ever
    assert len(recorder.decided) <= 4 and recorder.decided == list(range(1, len(recorder.decided) + 1))


def test_a_later_item_raises_instead_of_waiting_for_a_turn_that_cannot_come():
    turns = Turns(multiprocessing.get_context("fork"))
    with pytest.raises(ValueError):
        with turns.turn(1):
            raise ValueError("the first item's transaction failed")
    with pytest.raises(TurnsBroken):
        with turns.turn(2):
            pass


def test_a_spooled_declaration_reads_its_own_bytes_and_no_others(tmp_path):
    from declarations.services.batch_spool import Spooled
    spool = tmp_path / "items.spool"
    spool.write_bytes(b"\x00" * 8 + b"<first/>" + b"\x00" * 8 + b"<second/>")
    assert Spooled(str(spool), 8, 8).read() == b"<first/>"
    assert Spooled(str(spool), 24, 9).read() == b"<second/>"
    with pytest.raises(OSError, match="ends before the declaration"):
        Spooled(str(spool), 24, 10).read()  # a spool cut short never yields a shorter declaration


# --- the batch process never waits on the turns' condition (review of session 7) ---------------------------
# A multiprocessing notify waits until every process counted as waiting has woken; a worker killed while it
# waited for its turn (the pool terminates the others when one dies) never wakes.

def _wait_for_turn(turns: Turns, waiting) -> None:
    waiting.set()
    with turns.turn(1):  # closed: waits, as a head-start item does
        pass


@pytest.mark.parametrize("step", ["open", "stop", "close"])
def test_the_batch_process_goes_on_after_a_worker_died_waiting(step):
    import os
    import signal

    context = multiprocessing.get_context("fork")
    turns = Turns(context, closed=True)
    waiting = context.Event()
    worker = context.Process(target=_wait_for_turn, args=(turns, waiting))
    worker.start()
    assert waiting.wait(10)
    time.sleep(0.1)  # from its last step before the turn to waiting on it: microseconds
    os.kill(worker.pid, signal.SIGTERM)
    worker.join()
    within(5, getattr(turns, step), f"Turns.{step}() waited for a dead worker")


_POOL_TURNS = _POOL_WAITING = None


def _remember(turns: Turns, waiting) -> None:
    global _POOL_TURNS, _POOL_WAITING
    _POOL_TURNS, _POOL_WAITING = turns, waiting


def _take_turn(ticket: int) -> int:
    _POOL_WAITING.release()
    with _POOL_TURNS.turn(ticket):
        return ticket


def test_a_pool_whose_worker_died_at_the_closed_turns_shuts_down():
    import os
    import signal

    from declarations.services.batch_items import WorkerPool

    context = multiprocessing.get_context("fork")
    turns = Turns(context, closed=True)
    waiting = context.Semaphore(0)
    executor = futures.ProcessPoolExecutor(2, mp_context=context, initializer=_remember, initargs=(turns, waiting))
    pool = WorkerPool(executor, turns, 2)
    try:
        assert pool.usable()
        items = [pool.submit(_take_turn, n) for n in (1, 2, 3, 4)]
        assert waiting.acquire(timeout=10) and waiting.acquire(timeout=10)  # both workers at the closed turns
        time.sleep(0.1)  # from its last step before the turn to waiting on it: microseconds
        os.kill(next(iter(executor._processes)), signal.SIGKILL)  # e.g. the OOM killer
        futures.wait(items, timeout=10)
        assert all(isinstance(item.exception(timeout=0), futures.process.BrokenProcessPool) for item in items)
        assert not pool.usable()  # serve's BatchWorkers then starts a new pool for the next file
        within(10, lambda: pool.shutdown(wait=True, cancel_futures=True), "WorkerPool.shutdown() waited for a dead worker")
    finally:
        # Whatever failed above, no worker is left waiting at the turns (under a deadline: stop() is what the
        # test covers, and must not hang the run when it is wrong).
        within(5, turns.stop, "Turns.stop() waited for a dead worker")
        executor.shutdown(wait=False, cancel_futures=True)


def test_items_waiting_at_closed_turns_go_once_they_are_opened():
    """open() notifies nobody: the waiting items see it anyway (they look again every 5 ms)."""
    turns = Turns(multiprocessing.get_context("fork"), closed=True)
    recorder = Recorder(turns)
    decided = []
    with futures.ThreadPoolExecutor(max_workers=3) as pool:
        items = Items(pool, recorder, in_flight=6, local=False)
        for position in range(1, 4):
            decided += [p for p, _ in items.submit(position, b"")]
        time.sleep(0.1)
        assert recorder.decided == []  # closed: nobody decided
        turns.open()
        within(10, lambda: decided.extend(p for p, _ in items.finish()), "opened turns were not seen")
    assert recorder.decided == [1, 2, 3] and sorted(decided) == [1, 2, 3]
