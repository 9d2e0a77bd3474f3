"""A batch's declarations through the pipeline: in this process, or on several worker processes.

Every declaration goes through ``Ingest.submit`` exactly as in real time, and its position in the batch
commits in the declaration's own transaction (``decide``). What this module adds is *where* and *when*:

- **In this process** (``DECLARATIONS_BATCH_WORKERS=1``, or a file smaller than
  ``DECLARATIONS_BATCH_PARALLEL_MIN_BYTES``): one declaration after the other, in file order.
- **On worker processes**: the batch process sends each declaration's bytes to a pool
  of forked workers. A worker runs the pure stages (size and well-formedness, signature, XSD, decoding,
  identifiers: the larger part of a declaration's cost) as soon as it gets the item, then waits for its
  turn (``Turns``): the transactions run one after the other, **in file order**, each starting once the
  one before committed. So each declaration is decided exactly as if its sender had submitted it in real
  time, in file order (channels.md): it sees everything the earlier ones stored, and its DeclarationId,
  PeriodId and notification sequence numbers follow file order, as in one process. While one worker is
  in its transaction the others examine the next items.

The workers start when the file is claimed: each opens its connection and warms it (store/warmup.py) and
checks runs of declarations for the first pass (batch_scan.py). Once the first pass has cut the whole file,
the first items already go to them (``HeadStart``), behind turns that stay closed until the second pass
opens them; a first pass that ends in a refusal drops them undecided.

After a crash, the next owner skips the positions that committed (``batches.positions_stored``). Worker
processes die with the batch process (``PR_SET_PDEATHSIG``): none can commit an item after its owner is
gone and another process took the batch over.
"""


from __future__ import annotations

import concurrent.futures as futures
import contextlib
import ctypes
import functools
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator

from declarations import ns
from declarations.services.batch_spool import Spooled, SpooledRun
from declarations.services.examine import load_on_first_use
from declarations.store import batches
from declarations.store.warmup import warm_up
from declarations.xmlio import parsing, schemas

log = logging.getLogger("declarations.batch")


class LeaseLost(Exception):
    """Another process took the batch over: stop writing anything for it."""


@dataclass(frozen=True)
class BatchJob:
    """What every item of one batch shares (sent to each worker once per item: a few short fields)."""
    batch_pk: int
    owner: str
    sender_id: str
    batch_id: str
    max_item_bytes: int
    lease_seconds: float


def decide(app, job: BatchJob, position: int, data: bytes | Spooled,
           turn: ContextManager | None = None) -> tuple[int, str]:
    """One declaration through ``Ingest.submit``; its position and the lease commit with it.
    Returns (position, the outcome's status)."""
    if isinstance(data, Spooled):
        data = data.read()

    def record(connection, receipt):
        if not batches.record_item(connection, job.batch_pk, position, receipt.outcome.declaration_id,
                                   owner=job.owner, lease_until=time.time() + job.lease_seconds):
            raise LeaseLost()

    receipt = app.ingest.submit(data, channel="BATCH", max_bytes=job.max_item_bytes,
                                batch_sender_id=job.sender_id, batch_id=job.batch_id, on_decided=record,
                                turn=turn)
    return position, receipt.outcome.status


class _Immediate:
    """An executor that runs each call at once, in this process (the in-process mode)."""

    def submit(self, function, *args):
        future = futures.Future()
        try:
            future.set_result(function(*args))
        except BaseException as error:  # noqa: BLE001 -- handed to the caller through the future
            future.set_exception(error)
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


class Items:
    """Runs a batch's items on an executor, at most ``in_flight`` at once, each with its ticket (1, 2, ...
    in file order, for ``Turns``).

    ``submit`` and ``finish`` yield (position, status) of each item as it completes; a failed item raises
    its exception here, once the items that completed with it are reported and the running ones finished.
    """

    def __init__(self, executor, call: Callable, in_flight: int, *, local: bool):
        self._executor, self._call, self.in_flight = executor, call, max(1, in_flight)
        self._local = local  # the call runs here, at once (no ticket: nothing else runs meanwhile)
        self._running: dict[futures.Future, int] = {}  # each item running, with its ticket
        self._tickets = 0

    def submit(self, position: int, data: bytes | Spooled) -> Iterator[tuple[int, str]]:
        while len(self._running) >= self.in_flight:
            yield from self._completed()
        self._tickets += 1
        args = (position, data) if self._local else (self._tickets, position, data)
        self._running[self._executor.submit(self._call, *args)] = self._tickets
        if self._local:  # already done: report it now
            yield from self._completed()

    def finish(self) -> Iterator[tuple[int, str]]:
        while self._running:
            yield from self._completed()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def abandon(self) -> None:
        """Wait for the running items and report none of them (``HeadStart.discard``: each fails with
        TurnsBroken, or whatever it met first; none was decided)."""
        _wait_for_ended(self._running)
        self._running = {}

    def _completed(self) -> Iterator[tuple[int, str]]:
        done, _ = futures.wait(self._running, return_when=futures.FIRST_COMPLETED)
        tickets = {future: self._running.pop(future) for future in done}
        failed = [future for future in done if future.exception() is not None]
        for future in done:
            if future.exception() is None:
                yield future.result()
        if failed:
            self.close()  # the items already running finish or fail (each commits whole or not at all)
            # A later item's TurnsBroken can be collected before the failure that broke the chain (that
            # item's future is set a moment after the chain is broken): the items that ended meanwhile count.
            ended = _wait_for_ended(self._running)
            tickets.update(self._running)
            failed += [future for future in ended if future.exception() is not None]
            # The first failure in file order, not the later items it stopped (TurnsBroken), is the one raised.
            failed.sort(key=lambda future: (isinstance(future.exception(), TurnsBroken), tickets[future]))
            self._running = {}
            raise failed[0].exception()


def _wait_for_ended(running) -> list[futures.Future]:
    """Wait for ``running``'s items that were not cancelled, and return them: a future cancelled by an
    executor's shutdown never counts as done for ``futures.wait``, which would wait for it for ever."""
    ended = [future for future in running if not future.cancelled()]
    futures.wait(ended)
    return ended


_BROKEN, _CLOSED = -1, -2
# How often an item waiting for its turn looks again without being notified: what the batch process
# changes (open, stop, close) it changes without notifying (see Turns).
_LOOK_AGAIN_SECONDS = 0.005
# How long the batch process waits for the turns' lock before it writes without it.
_LOCK_SECONDS = 1.0


class Turns:
    """Tickets for the batch's transactions, shared by the worker processes (made before the fork): the
    item with ticket n starts its transaction once ticket n - 1's ended. One that fails breaks the
    chain: every later item raises instead of waiting for a turn that cannot come. Made ``closed``, no
    item gets a turn before ``open`` (a head start: ``HeadStart``).

    The workers notify each other; the batch process (``open``, ``close``, ``stop``) never waits on the
    condition and never notifies: a multiprocessing notify waits until every process counted as waiting
    has woken, and a worker killed while it waited (the pool terminates the others when one dies) never
    wakes; the batch process would hang for ever instead of reporting the batch interrupted. The workers
    waiting look again every few milliseconds instead.
    """

    def __init__(self, context, *, closed: bool = False):
        self._condition = context.Condition()
        # The last ticket whose transaction ended; _BROKEN; _CLOSED: not open yet.
        self._done = context.RawValue("q", _CLOSED if closed else 0)

    def open(self) -> None:
        """(The batch process.)"""
        self._set_unnotified(lambda done: 0 if done == _CLOSED else done)

    def close(self) -> None:
        """(The batch process.) Closed again, broken or not, tickets from 1 again: only once no item is in
        flight (a head start discarded before the second pass)."""
        self._set_unnotified(lambda done: _CLOSED)

    def stop(self) -> None:
        """(The batch process.) Break the chain: no item waiting gets a turn any more."""
        self._set_unnotified(lambda done: _BROKEN)

    def _set_unnotified(self, change: Callable[[int], int]) -> None:
        # A worker killed while it held the lock leaves it taken: the value is written without it then (an
        # aligned 64-bit store; the pool is broken anyway).
        locked = self._condition.acquire(timeout=_LOCK_SECONDS)
        try:
            self._done.value = change(self._done.value)
        finally:
            if locked:
                self._condition.release()

    @contextlib.contextmanager
    def turn(self, ticket: int):
        with self._condition:
            while not self._condition.wait_for(lambda: self._done.value in (ticket - 1, _BROKEN),
                                               timeout=_LOOK_AGAIN_SECONDS):
                pass
            if self._done.value == _BROKEN:
                raise TurnsBroken("an earlier declaration of the batch failed")
        try:
            yield
        except BaseException:
            self.break_chain()
            raise
        self._finish(ticket)

    @property
    def broken(self) -> bool:
        return self._done.value == _BROKEN

    def break_chain(self) -> None:
        """(A worker.) An item failed, in its transaction or before it got there: no later item will get a
        turn."""
        self._finish(_BROKEN)

    def _finish(self, value: int) -> None:
        with self._condition:
            if self._done.value != _BROKEN:  # broken stays broken: a later item must never get the failed one's turn
                self._done.value = value
            self._condition.notify_all()


class TurnsBroken(Exception):
    """An earlier item's transaction failed: this one is not decided (the batch stops)."""


# --- the worker processes --------------------------------------------------------------------------------

_WORKER_APP = None
_TURNS: Turns | None = None


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this worker when the batch process dies (kill -9 included), so that no worker
    commits an item of a batch another process has taken over. Elsewhere: no such guarantee."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


# glibc's malloc: a freed block of up to this size stays with the worker for the next declaration.
_KEEP_FREED_BYTES = 32 * 1024 * 1024


def _keep_freed_memory() -> None:
    """glibc: what a declaration frees stays in the worker's heap for the next one instead of going back to
    the kernel. By default the top of the heap is given back once 128 KiB are free there, and blocks from
    128 KiB (the declaration's bytes, the decoder's text, the COPY text) are mapped afresh and unmapped each
    time: every declaration then faulted its pages in again (~2,000 page faults per 1,000-worker DmfA;
    14,000-17,500 per worker in a 10,000-worker batch, ~6,900 with this). A worker keeps at most this much
    free memory beyond what its largest declaration needs. Elsewhere than glibc: nothing."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, _KEEP_FREED_BYTES)  # M_MMAP_THRESHOLD (glibc's largest; also stops it from moving by itself)
    mallopt(-1, _KEEP_FREED_BYTES)  # M_TRIM_THRESHOLD


def _start_worker(app, turns: Turns, parent: int) -> None:
    """Each worker, once, just after the fork: the batch process's App, with a connection pool of its own."""
    global _WORKER_APP, _TURNS
    _die_with_parent(parent)
    _keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch process's to handle
    # serve's inbox process stops on SIGTERM by setting a flag; a worker must stop at once when the pool
    # terminates it (after another worker died).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    app.engine.dispose(close=False)  # nothing of the parent's pool is used here (it was empty anyway)
    _warm_up(app.engine)
    # What the fork brought (modules, schemas, the engine key: a few hundred thousand objects) never
    # becomes garbage here: out of the collector's sight, a collection triggered by a DmfA's thousands of
    # new objects does not walk it again (and does not write to the pages shared with the batch process).
    # 40,000 workers on two workers: 4.8-5.0x -> 4.3-4.4x the floor on SQLite, 5.4-6.0x -> 5.3x on PostgreSQL.
    gc.freeze()
    _WORKER_APP, _TURNS = app, turns


def _warm_up(engine) -> bool:
    """This worker's connection, opened and made ready (store/warmup.py) while the first pass runs, rather
    than in the worker's first transaction, in the batch's chain. False if it could not be."""
    try:
        with engine.connect() as connection:
            warm_up(connection)
    except Exception:  # noqa: BLE001 -- a shortcut only: the worker's first item meets the same trouble and reports it
        log.warning("a connection could not be warmed up for the batch's statements", exc_info=True)
        return False
    return True


_COMPILED_HERE: "weakref.WeakSet" = weakref.WeakSet()  # engines whose statements this process compiled


def _compile_before_forking(engine) -> None:
    """Once per engine and process, before the first fork: the warm-up's statements run here, so that the
    workers inherit SQLAlchemy's compiled statements with the rest of this process's memory and their own
    warm-up is left with their connection's part (~5 ms of CPU each instead of ~14: compiled once here, not
    once per worker)."""
    if engine not in _COMPILED_HERE and _warm_up(engine):
        _COMPILED_HERE.add(engine)


def _ready() -> None:
    """A first task per worker: makes the pool start every worker at once."""


def _decide_in_worker(job: BatchJob, ticket: int, position: int, data: bytes | Spooled) -> tuple[int, str]:
    if os.environ.get("DECLARATIONS_BATCH_CRASH_AT") == f"worker-item:{position}":  # test hook: a worker dies
        os.kill(os.getpid(), signal.SIGKILL)
    if _TURNS.broken:  # a head start discarded, a batch stopping: not worth examining
        raise TurnsBroken("an earlier declaration of the batch failed, or the batch stopped")
    try:
        return decide(_WORKER_APP, job, position, data, turn=_TURNS.turn(ticket))
    except BaseException:
        _TURNS.break_chain()  # also when it failed before its turn: nobody waits for it then
        raise


def well_formed_in_worker(run: SpooledRun) -> bool:
    """The first pass's check of a run of declarations, in a worker (batch_scan): each parses as it does
    inside the batch file."""
    return all(parsing.well_formed_inside(data) for data in run.pieces())


class WorkerPool:
    """The batch's worker processes (an executor: ``submit``, ``shutdown``) and the turns they share, closed
    until the batch process opens them."""

    def __init__(self, executor: futures.ProcessPoolExecutor, turns: Turns, workers: int):
        self.executor, self.turns, self.workers = executor, turns, workers

    def submit(self, function, *args) -> futures.Future:
        return self.executor.submit(function, *args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.turns.stop()  # an item still waiting for a turn (a head start) gives up rather than hang
        self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def shutdown_in_background(self) -> threading.Thread:
        """``shutdown`` in a thread of its own: the workers exit while the caller goes on; joining the thread
        waits for them (the executor's own threads included)."""
        thread = threading.Thread(target=self.shutdown, name="batch-workers-stop", daemon=True)
        thread.start()
        return thread

    def usable(self) -> bool:
        """Whether the pool still takes work: not shut down, no worker died (the executor then refuses
        anything new). A worker that dies just after this answer breaks the next batch as it would any
        batch (INTERRUPTED)."""
        try:
            self.executor.submit(_ready)
        except (futures.BrokenExecutor, RuntimeError):  # broken, or shut down
            return False
        return True


class BatchWorkers:
    """Where a file gets its worker processes from.

    ``batch run`` (``keep=False``): started for each file that needs them, stopped after it. ``serve``
    (``keep=True``): started once (``start``, when the watcher starts) and kept from one file to the next,
    so that a file does not wait for the forks, the workers' connections and their warm-up (~0.03-0.05 s
    of a 10,000-worker batch on PostgreSQL: ~4.4x -> ~4.1x the floor, bench/README.md, "Session 8"). A
    pool is kept only after a file that ended cleanly (done, or refused whole): after
    anything else (a worker that died, an error, a lost lease) it may be shut down or hold a broken chain,
    so it is stopped and the next file starts a new one. The turns are closed again between files
    (tickets from 1).

    Use it from one long-lived thread (``serve``'s watcher runs in its process's main thread): the workers
    are forked by the thread that first needs them, and Linux's PR_SET_PDEATHSIG (``_die_with_parent``)
    kills them when that *thread* ends.
    """

    def __init__(self, app, *, keep: bool):
        self._app, self._keep = app, keep
        self._kept: WorkerPool | None = None
        self._stopping: list[threading.Thread] = []  # pools stopping after a clean file, not waited for yet

    @property
    def kept(self) -> WorkerPool | None:
        """The pool waiting for the next file, if any."""
        return self._kept

    def prepare(self) -> None:
        """Load now what every worker shares with this process through the fork (``prepare_to_fork``): for
        ``batch run``, at its start, with the rest of its start-up, rather than when a file needs workers.
        Never raises: whatever fails here fails again, and is reported, where a file needs the workers."""
        try:
            prepare_to_fork(self._app)
        except Exception:  # noqa: BLE001
            log.warning("the batch workers' shared state could not be prepared", exc_info=True)

    def start(self, workers: int) -> None:
        """Have ``workers`` processes ready for the next file (kept ones only; nothing for 1 or fewer)."""
        if self._keep and workers > 1:
            self.give_back(self.take(workers), clean=True)

    def take(self, workers: int) -> WorkerPool:
        self._collect_stopping()  # no fork while an executor's threads still run (a lock they hold is copied)
        pool, self._kept = self._kept, None
        if pool is not None and (pool.workers != workers or not pool.usable()):
            pool.shutdown(wait=True, cancel_futures=True)
            pool = None
        return pool if pool is not None else start_workers(self._app, workers)

    def give_back(self, pool: WorkerPool, *, clean: bool) -> None:
        """``pool`` is done with a file; ``clean``: the file ended done or refused whole, no item in flight."""
        if self._keep and clean:
            pool.turns.close()
            self._kept = pool
        elif clean:
            # Nothing in flight, the file's answers are out: the workers are told to stop and exit on their
            # own, and are waited for only before the next fork or at ``close`` (by then at no cost), not
            # for ~10 ms at the end of every file.
            self._stopping.append(pool.shutdown_in_background())
        else:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._collect_stopping()
        if self._kept is not None:
            self._kept.shutdown(wait=True, cancel_futures=True)
            self._kept = None

    def _collect_stopping(self) -> None:
        while self._stopping:
            self._stopping.pop().join()


# Whether this thread loaded what examining loads on first use (the decoder's stylesheet is per thread; a
# worker is forked from the thread that calls start_workers, and keeps that thread's).
_EXAMINED_HERE = threading.local()


def prepare_to_fork(app) -> None:
    """What the workers share with this process, loaded here once (each later call from the same thread costs
    nothing; from another thread, examining the samples again, ~2 ms): the services and the engine key, the
    compiled schemas (the batch's own included: the first pass reads the BatchHeader here), what examining a
    declaration loads on first use, the compiled statements."""
    app.ingest  # noqa: B018
    for tag in (*ns.KIND_BY_ROOT, ns.qn(ns.BATCH, "BatchHeader")):
        schemas.schema_for(tag)
    if not getattr(_EXAMINED_HERE, "done", False):
        stopped = [e.kind for e in load_on_first_use(app.signer) if e.refusal or e.xsd or e.declaration is None]
        if stopped:  # the workers then load the rest during their first declarations: slower, not wrong
            log.warning("samples examined before forking the batch workers stopped early: %s", stopped)
        _EXAMINED_HERE.done = True
    _compile_before_forking(app.engine)


def start_workers(app, workers: int) -> WorkerPool:
    """``workers`` processes, forked from this one now, so that they are ready when the first pass ends.

    Forked, not spawned: a spawned worker imports everything and loads the engine key again (about a
    second of CPU each, a fifth of a 40,000-worker batch on two cores); a forked one shares what this
    process has loaded, warmed here first. No database connection crosses the fork: the pool is emptied
    here (closed properly) and again in the child (dropped), so each worker opens its own. The fork
    happens from the calling thread before the executor starts its own thread.
    """
    prepare_to_fork(app)
    app.engine.dispose()
    context = multiprocessing.get_context("fork")
    turns = Turns(context, closed=True)
    pool = futures.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                                       initargs=(app, turns, os.getpid()))
    for _ in range(workers):
        pool.submit(_ready)
    return WorkerPool(pool, turns, workers)


def items_runner(app, job: BatchJob, pool: WorkerPool | None, workers: int) -> Items:
    """On ``pool`` (``start_workers``) if there is one, else in this process."""
    if pool is None:
        return Items(_Immediate(), functools.partial(decide, app, job), 1, local=True)
    # Two per worker: a worker runs one item at a time (examined, then its turn and transaction), and the next
    # one already waits in the pool's queue for the moment it is free.
    return Items(pool, functools.partial(_decide_in_worker, job), 2 * workers, local=False)


class HeadStart:
    """The first items of a fresh batch, handed to the workers as soon as the first pass has cut the whole
    file (``start``), while its last checks still run (the last runs' well-formedness, the directory, the
    ack): each worker's first one is examined while the first pass ends (the second waits in the pool's
    queue: a worker runs one item at a time), and their transactions wait behind the turns, closed until
    the second pass opens them. A 10,000-worker batch's first transaction started ~40
    ms earlier: 4.7-4.8x -> 4.3-4.4x the floor on PostgreSQL (bench/README.md, "Session 7"). A first pass
    that ends otherwise (a refusal, the careful way reading the file again) ``discard``s them: the chain is
    broken, so none is decided, and the turns are closed again for the second pass's tickets."""

    def __init__(self, pool: WorkerPool, runner_for: Callable[[object], Items]):
        self._pool, self._runner_for = pool, runner_for
        self.runner: Items | None = None
        self.submitted = 0  # items 1 to this one are with the workers

    def start(self, header, entries: Iterator[Spooled]) -> None:
        """Hand over the first items (as many as the runner keeps in flight), from the spool being written.
        Only once every run of the first pass's checks is with the workers: an item waiting for its turn
        holds a worker, and a run queued behind it would never be checked."""
        self.runner = self._runner_for(header)
        for position, entry in zip(range(1, self.runner.in_flight + 1), entries):
            for _ in self.runner.submit(position, entry):  # never more than in flight: nothing to wait for
                pass
            self.submitted = position

    def handover(self, *, usable: bool) -> tuple[Items, int] | None:
        """For the second pass: the runner with items 1 to n in flight, and n; None when nothing was handed
        over, or when it is not ``usable`` (then discarded)."""
        if self.runner is not None and not usable:
            self.discard()
        return None if self.runner is None else (self.runner, self.submitted)

    def discard(self) -> None:
        if self.runner is None:
            return
        self._pool.turns.stop()
        self.runner.abandon()
        self._pool.turns.close()
        self.runner, self.submitted = None, 0
