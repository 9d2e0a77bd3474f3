"""A batch's declarations through the pipeline: in this process, or on several worker processes.

Every declaration goes through ``Ingest.submit`` exactly as in real time, and its position in the batch
commits in the declaration's own transaction (``decide``). What this module adds is *where* and *when*:

- **In this process** (``DECLARATIONS_BATCH_WORKERS=1``, or a file smaller than
  ``DECLARATIONS_BATCH_PARALLEL_MIN_BYTES``): one declaration after the other, in file order; the streamed
  element is handed to ``submit`` as it is (no second parse).
- **On worker processes**: the batch process reads the file and sends each declaration's bytes to a pool;
  each worker decides it on its own connection. The spec asks for "each declaration processed as if its
  sender had submitted it in real time, in file order". Two declarations may therefore run at the same time
  only when neither can read what the other writes. What a declaration reads and writes is scoped by its
  employer (the employer's Dimona periods, current DmfA, social risks: the same scope the store serialises
  writers on), and by its ``(SenderId, MessageId)`` key. So each item carries *conflict keys* read from its
  element (``conflict_keys``) and waits until no item in flight shares one: items of one employer run one at
  a time, in file order. A Dimona that reads or writes across employers (a student's yearly hours, or an
  Out, Update or Cancel, whose period's worker type the batch process cannot see) and an item whose keys
  cannot be read wait for every item in flight and run alone. The keys are read from the unverified
  element: they only order the work; what is decided is read from the verified content, as always.

After a crash, the next owner skips exactly the positions that committed (``batches.positions_stored``),
whichever order they committed in. Worker processes die with the batch process (``PR_SET_PDEATHSIG``):
none can commit an item after its owner is gone and another process took the batch over.
"""

from __future__ import annotations

import concurrent.futures as futures
import ctypes
import functools
import multiprocessing
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

from lxml import etree

from declarations import ns
from declarations.store import batches
from declarations.xmlio import schemas

# Everything in flight conflicts with this key: the item runs alone.
ALONE = "*"


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


def decide(app, job: BatchJob, position: int, data: bytes, element: etree._Element | None = None) -> tuple[int, str]:
    """One declaration through ``Ingest.submit``; its position and the lease commit with it.
    Returns (position, the outcome's status)."""

    def record(connection, receipt):
        batches.add_item(connection, job.batch_pk, position, receipt.outcome.declaration_id)
        if not batches.heartbeat(connection, job.batch_pk, job.owner, time.time() + job.lease_seconds,
                                 count_item=True):
            raise LeaseLost()

    receipt = app.ingest.submit(data, channel="BATCH", element=element, max_bytes=job.max_item_bytes,
                                batch_sender_id=job.sender_id, batch_id=job.batch_id, on_decided=record)
    return position, receipt.outcome.status


def conflict_keys(element: etree._Element) -> frozenset[str]:
    """What the item may read or write that another item might too (see the module's docstring)."""
    namespace = etree.QName(element).namespace
    kind = ns.KIND_BY_ROOT.get(element.tag)
    noss = element.findtext(f"{{{namespace}}}Employer/{{{namespace}}}NOSSRegistrationNbr")
    message_id = element.findtext(f"{{{namespace}}}Header/{{{namespace}}}MessageId")
    if kind is None or not noss or not message_id:
        return frozenset({ALONE})
    if kind == "DIMONA":
        action = element.find(f"{{{namespace}}}DimonaIn")
        if action is None or (action.findtext(f"{{{namespace}}}WorkerType") or "").strip() == "STU":
            return frozenset({ALONE})
    return frozenset({f"employer:{noss.strip()}", f"message:{message_id}"})


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
    """Runs a batch's items on an executor, at most ``in_flight`` at once, never two with a common key.

    ``submit`` and ``finish`` yield (position, status) of each item as it completes (any order); a failed
    item raises its exception here, after the items already running have finished.
    """

    def __init__(self, executor, call: Callable, in_flight: int, *, local: bool):
        self._executor, self._call, self._limit = executor, call, max(1, in_flight)
        self._local = local  # the call runs here: it may take the streamed element (never sent elsewhere)
        self._running: dict[futures.Future, frozenset[str]] = {}
        self._keys: Counter[str] = Counter()

    def submit(self, keys: frozenset[str], position: int, data: bytes,
               element: etree._Element) -> Iterator[tuple[int, str]]:
        while self._running and (len(self._running) >= self._limit or self._conflicts(keys)):
            yield from self._completed()
        args = (position, data, element) if self._local else (position, data)
        future = self._executor.submit(self._call, *args)
        self._running[future] = keys
        self._keys.update(keys)
        if self._local:  # already done: report it now, while the element is still the current one
            yield from self._completed()

    def finish(self) -> Iterator[tuple[int, str]]:
        while self._running:
            yield from self._completed()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _conflicts(self, keys: frozenset[str]) -> bool:
        return ALONE in keys or self._keys[ALONE] > 0 or any(self._keys[k] for k in keys)

    def _completed(self) -> Iterator[tuple[int, str]]:
        done, _ = futures.wait(list(self._running), return_when=futures.FIRST_COMPLETED)
        for future in done:
            for key in self._running.pop(future):
                self._keys[key] -= 1
                if not self._keys[key]:
                    del self._keys[key]  # message keys are one per item: do not keep them all
            error = future.exception()
            if error is not None:
                self.close()  # the items already running finish (each commits whole or not at all)
                raise error
            yield future.result()


# --- the worker processes --------------------------------------------------------------------------------

_WORKER_APP = None


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this worker when the batch process dies (kill -9 included), so that no worker
    commits an item of a batch another process has taken over. Elsewhere: no such guarantee."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _start_worker(app, parent: int) -> None:
    """Each worker, once, just after the fork: the batch process's App, with a connection pool of its own."""
    global _WORKER_APP
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch process's to handle
    app.engine.dispose(close=False)  # nothing of the parent's pool is used here (it was empty anyway)
    _WORKER_APP = app


def _ready() -> None:
    """A first task per worker: makes the pool start every worker at once."""


def _decide_in_worker(job: BatchJob, position: int, data: bytes) -> tuple[int, str]:
    if os.environ.get("DECLARATIONS_BATCH_CRASH_AT") == f"worker-item:{position}":  # test hook: a worker dies
        os.kill(os.getpid(), signal.SIGKILL)
    return decide(_WORKER_APP, job, position, data)


def start_workers(app, workers: int) -> futures.ProcessPoolExecutor:
    """``workers`` processes, forked from this one now, so that they are ready when the first pass ends.

    Forked, not spawned: a spawned worker imports everything and loads the engine key again (about a
    second of CPU each, a fifth of a 40,000-worker batch on two cores); a forked one shares what this
    process has loaded, warmed here first. No database connection crosses the fork: the pool is emptied
    here (closed properly) and again in the child (dropped), so each worker opens its own. The fork
    happens from the calling thread before the executor starts its own thread.
    """
    app.ingest, app.signer  # noqa: B018 -- loaded once, here, for every worker
    for tag in ns.KIND_BY_ROOT:
        schemas.schema_for(tag)
    app.engine.dispose()
    pool = futures.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_start_worker, initargs=(app, os.getpid()))
    for _ in range(workers):
        pool.submit(_ready)
    return pool


def items_runner(app, job: BatchJob, pool: futures.ProcessPoolExecutor | None, workers: int) -> Items:
    """On ``pool`` (``start_workers``) if there is one, else in this process."""
    if pool is None:
        return Items(_Immediate(), functools.partial(decide, app, job), 1, local=True)
    # Two per worker: the next item is queued while one runs, so no worker waits for the reader.
    return Items(pool, functools.partial(_decide_in_worker, job), 2 * workers, local=False)
