"""The batch inbox (channels.md "Batch: the inbox"; the lifecycle is in docs/batch.md).

``process_inbox_once(app)`` takes every complete batch in the inbox now
(``NAME.xml`` or ``NAME.xml.gz`` with its ``NAME.go``), one at a time:

1. archive the file by its SHA-256 (``ARCHIVE/<sha256>.xml[.gz]``), hashing it
   while copying; from here on only the archived copy is read. The copy is made
   durable (fsync) and named in the background (``_Settling``), and that is
   waited for before the ack;
2. claim it in the database (``store/batches.py``: a row per SHA-256 with an
   owner and a lease) -- another process holding it means: skip it;
3. a first streaming pass (``batch_scan.py``): B001-B007 and ItemCount; a refusal writes a
   signed FILE_REFUSED ``NAME.ack.xml`` and stores nothing else. It also
   writes each declaration's bytes to a spool file beside the archive, so that
   the file is parsed once;
4. the signed RECEIVED ``NAME.ack.xml``;
5. a second pass, over the spool: each declaration through ``Ingest.submit``
   exactly as in real time (channel ``BATCH``); its position in the batch
   commits in the declaration's own transaction, so after a crash the next
   owner starts after the last committed item and nothing is stored twice (a
   resumed batch has no spool: it reads the archived file again);
6. the signed ``NAME.result.xml``, streamed from the stored results in file
   order into ``ARCHIVE/<sha256>.result.xml`` (signed while written, memory
   bounded by one item: ``batch_xml.write_result``), then copied to the outbox;
7. the inbox files are removed (the bytes are in the archive).

Outbox files are written aside and renamed. A retry (a file with the SHA-256
of a finished batch, i.e. the same BatchId and content) gets the stored
answers again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import threading
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol

from lxml import etree
from sqlalchemy.exc import IntegrityError

from declarations.services.batch_items import BatchJob, BatchWorkers, HeadStart, LeaseLost, items_runner
from declarations.services.batch_scan import (BatchHeader, FileRefused, scan_carefully, scan_quickly,
                                               stream_items)
from declarations.services.batch_spool import Spool, Spooled, remove_if_stale
from declarations.store import batches
from declarations.store.views import DirectoryReader
from declarations.xmlio import batch_xml
from declarations.xmlio.results import to_bytes

log = logging.getLogger("declarations.batch")

NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_CHUNK = 1024 * 1024
# The first pass extends its claim's lease every quarter of the lease (Settings.batch_lease_seconds).
HEARTBEATS_PER_LEASE = 4


def name_problem(name: str) -> str | None:
    """Why NAME is not a batch name (channels.md: 1-100 of [A-Za-z0-9._-]), or None."""
    if not NAME.fullmatch(name):
        return "a batch NAME is 1-100 of A-Z a-z 0-9 . _ -"
    if ".." in name:
        return "a batch NAME may not contain '..'"
    return None


@dataclass
class Summary:
    """One file taken (or seen) by one pass over the inbox."""
    file_name: str
    outcome: str                    # DONE | FILE_REFUSED | RETRY | BUSY | BAD_NAME | GONE | INTERRUPTED
    file_sha256: str | None = None
    batch_id: str | None = None
    sender_id: str | None = None
    code: str | None = None
    message: str | None = None
    items: int = 0
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def refused(self) -> bool:
        return self.outcome in ("FILE_REFUSED", "BAD_NAME")


class Progress(Protocol):
    def started(self, summary: Summary, total: int, done: int) -> None: ...
    def advanced(self, status: str) -> None: ...
    def finished(self, summary: Summary) -> None: ...


class _Quiet:
    def started(self, summary, total, done): pass
    def advanced(self, status): pass
    def finished(self, summary): pass


def _event(event: str, level: int = logging.INFO, **fields) -> None:
    log.log(level, json.dumps({"event": event, **{k: v for k, v in fields.items() if v is not None}},
                              sort_keys=False))


def _crash_point(point: str) -> None:
    """Test hook: DECLARATIONS_BATCH_CRASH_AT=claimed|acked|item:N|done|result kills this process (SIGKILL)."""
    if os.environ.get("DECLARATIONS_BATCH_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _owner_is_gone(owner: str) -> bool:
    """A lease held by a dead process of this host is over at once (kill -9, then a restart)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def write_atomic(folder: Path, name: str, data: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``folder/name`` whole: aside (a dot-file), fsync, then rename. ``data``: the bytes, or a
    function that writes them to the open file (a stream)."""
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder / f".{name}.{os.getpid()}.tmp"
    try:
        with open(aside, "wb") as out:
            if callable(data):
                data(out)
            else:
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
    final = folder / name
    os.replace(aside, final)
    return final


def copy_atomic(folder: Path, name: str, source: Path) -> Path:
    """``write_atomic`` of a file's content, copied a chunk at a time."""
    def copy(out):
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
    return write_atomic(folder, name, copy)


class Inbox:
    """The batch folders and the processing of one file; ``process_inbox_once`` drives it."""

    def __init__(self, app, progress: Progress | None = None, workers: BatchWorkers | None = None):
        self.app = app
        self.settings = app.settings
        self.progress = progress or _Quiet()
        self.workers = workers or BatchWorkers(app, keep=False)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- discovery -------------------------------------------------------------

    def complete_uploads(self) -> list[tuple[str, Path | None, str | None]]:
        """(NAME, data file or None, why refused or None) for each NAME.go in the inbox, by name."""
        inbox = self.settings.inbox
        if not inbox.is_dir():
            return []
        found = []
        for entry in sorted(os.listdir(inbox)):
            if not entry.endswith(".go") or entry.startswith("."):
                continue  # not a .go, or a hidden / temporary file
            name = entry[:-3]
            problem = name_problem(name)
            if problem:
                found.append((name, None, problem))
                continue
            gz, plain = inbox / f"{name}.xml.gz", inbox / f"{name}.xml"
            data = gz if gz.is_file() else plain if plain.is_file() else None
            if data is not None:
                found.append((name, data, None))
        return found

    def run_once(self) -> list[Summary]:
        summaries = []
        for name, data, problem in self.complete_uploads():
            if problem:
                summaries.append(self._bad_name(name, problem))
            else:
                summaries.append(self.take(name, data))
        return summaries

    def _bad_name(self, name: str, problem: str) -> Summary:
        # Never opened and never answered (no valid FileName to answer with); renamed out of the way so
        # that it is reported once. os.listdir names carry no separator: the rename stays in the inbox.
        go = self.settings.inbox / f"{name}.go"
        try:
            os.replace(go, self.settings.inbox / f"{name}.go.refused")
        except OSError:
            pass
        _event("batch.bad_name", file=f"{name}.go", message=problem)
        return Summary(f"{name}.go", "BAD_NAME", message=problem)

    # -- one file ----------------------------------------------------------------

    def take(self, name: str, data_path: Path) -> Summary:
        begin = time.monotonic()
        file_name = data_path.name
        go_path = self.settings.inbox / f"{name}.go"
        if batches.held_elsewhere(self.app.engine, file_name=file_name, owner=self.owner, now=time.time(),
                                  owner_is_gone=_owner_is_gone):
            # Another process is on it: not copied and hashed again at every pass of every watcher (a file of
            # 137 MB every 2 s per idle `serve`). Should the name hide other content, it is taken once the
            # holder is done with this one (or its lease ran out).
            return Summary(file_name, "BUSY")
        try:
            go_text = go_path.read_bytes()
            seen = data_path.stat()
            sha, size, settling = self._archive(data_path)
        except FileNotFoundError:  # taken and cleaned up by another process meanwhile
            return Summary(file_name, "GONE")
        try:
            return self._take(name, data_path, file_name, go_path, go_text, seen, sha, size, settling, begin)
        finally:
            settling.join()  # never leaves a copy half-settled behind, whatever happened

    def _take(self, name: str, data_path: Path, file_name: str, go_path: Path, go_text: bytes, seen, sha: str,
              size: int, settling: "_Settling", begin: float) -> Summary:
        archived = settling.path  # being settled: readable now, under its final name once settled
        claim = batches.claim(self.app.engine, file_sha256=sha, file_name=file_name, owner=self.owner,
                              now=time.time(), lease_seconds=self.settings.batch_lease_seconds,
                              owner_is_gone=_owner_is_gone)
        summary = Summary(file_name, "BUSY", file_sha256=sha)
        if claim.decision == "BUSY":
            return summary
        row = claim.row
        Spool.drop_stale(self.settings.archive, sha, _owner_is_gone)  # an earlier owner's, killed meanwhile
        if claim.decision == "RETRY":
            settling.wait()
            summary.outcome, summary.batch_id, summary.sender_id = "RETRY", row.batch_id, row.sender_id
            self._answer(name, row.ack, row.result, sha)
            self._clean(go_path, go_text, data_path, seen)
            _event("batch.retry", file=file_name, sha256=sha, batch_id=row.batch_id, sender_id=row.sender_id)
            return summary
        _crash_point("claimed")
        workers = self._workers_for(size)
        pool = self._pool(workers, file_name)
        clean = False  # the file ended done or refused whole: its workers can take the next one (serve)
        spool = Spool(self.settings.archive, sha, self.owner)
        head = None if pool is None else HeadStart(
            pool, lambda header: items_runner(self.app, self._job(row, header), pool, workers))
        try:
            if row.status == batches.RECEIVED:  # resumed: no spool, the second pass reads the archive again
                header = BatchHeader(row.batch_id, row.sender_id, row.item_count)
                self._write(f"{name}.ack.xml", row.ack)
            else:
                received_at = self.settings.now()
                header = self._first_pass(row, archived, file_name, go_text, size, received_at, name, spool,
                                          pool, workers, settling, head)
                if isinstance(header, FileRefused):  # the ack says why
                    spool.remove()
                    refused = header
                    summary.outcome, summary.code, summary.message = "FILE_REFUSED", refused.code, refused.message
                    summary.batch_id = getattr(refused, "batch_id", None)
                    self._clean(go_path, go_text, data_path, seen)
                    summary.seconds = time.monotonic() - begin
                    _event("batch.refused", file=file_name, sha256=sha, code=refused.code, message=refused.message)
                    clean = True
                    return summary
            _crash_point("acked")
            archived = settling.wait()
            summary.batch_id, summary.sender_id, summary.items = header.batch_id, header.sender_id, header.item_count
            _event("batch.taken", file=file_name, sha256=sha, batch_id=header.batch_id, sender_id=header.sender_id,
                   items=header.item_count, resumed_at=row.items_done or None, owner=self.owner)
            self._second_pass(row, archived, header, summary, pool, workers, spool, head)
            spool.remove()
            result = self._result(row, header, file_name, sha)
            with self.app.engine.begin() as connection:
                if not batches.mark_done(connection, row.id, self.owner):
                    raise LeaseLost()
            _crash_point("done")
            copy_atomic(self.settings.outbox, f"{name}.result.xml", result)
            _crash_point("result")
            self._clean(go_path, go_text, data_path, seen)
            clean = True
        except LeaseLost:
            summary.outcome = "BUSY"
            _event("batch.lease_lost", file=file_name, sha256=sha, owner=self.owner)
            return summary
        except BrokenProcessPool as error:
            # A worker process died (killed, out of memory): what committed stays. The claim stays too,
            # until its lease runs out (or at once once this process is gone, as after `batch run`): an
            # item that kills its worker every time is not retried in a tight loop by `serve`.
            summary.outcome, summary.message = "INTERRUPTED", f"a worker process died: {error}"
            _event("batch.interrupted", file=file_name, sha256=sha, message=summary.message, owner=self.owner)
            return summary
        finally:
            if pool is not None:
                self.workers.give_back(pool, clean=clean)
            spool.remove()
        summary.outcome = "DONE"
        summary.seconds = time.monotonic() - begin
        _event("batch.finished", file=file_name, sha256=sha, batch_id=header.batch_id, sender_id=header.sender_id,
               items=header.item_count, seconds=round(summary.seconds, 3), **summary.counts)
        self.progress.finished(summary)
        return summary

    def _archive(self, data_path: Path) -> tuple[str, int, "_Settling"]:
        """Copy the upload into the archive while hashing it; the archived copy is named by its SHA-256
        once it is durable (``_Settling``, in the background)."""
        archive = self.settings.archive
        archive.mkdir(parents=True, exist_ok=True)
        _drop_stale_uploads(archive)
        digest = hashlib.sha256()
        # Named by its owner (as the spool is) and ending as the file does (batch_scan reads a .gz name as
        # gzip): the first pass reads this name.
        suffix = ".xml.gz" if data_path.name.endswith(".gz") else ".xml"
        aside = archive / f".upload.{self.owner.replace(':', '.')}.{uuid.uuid4().hex[:8]}.tmp{suffix}"
        size = 0
        with open(data_path, "rb") as source, open(aside, "wb") as out:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        sha = digest.hexdigest()
        return sha, size, _Settling(aside, self._archived(sha, data_path.name))

    def _archived(self, sha: str, file_name: str) -> Path:
        return self.settings.archive / (f"{sha}.xml.gz" if file_name.endswith(".gz") else f"{sha}.xml")

    # -- the first pass: file-level checks, then the ack -----------------------

    def _first_pass(self, row, archived: Path, file_name: str, go_text: bytes, size: int, received_at,
                    name: str, spool: Spool, pool, workers: int, settling: "_Settling",
                    head: HeadStart | None) -> BatchHeader | FileRefused:
        sha = row.file_sha256
        header: BatchHeader | None = None
        keep_alive = self._lease_keeper(row)
        try:
            expected = go_text.decode("ascii", "replace").removesuffix("\n")  # "optionally followed by a newline"
            if expected != sha:
                raise FileRefused(f"the SHA-256 of {file_name} is {sha}, not the one in {name}.go "
                                  f"({expected[:64]!r})", code="B001")
            limit = self.settings.max_batch_bytes
            if size > limit:
                raise FileRefused(f"the file is {size} bytes, larger than the limit of {limit} bytes", code="B007")
            # What the header asks of the store (B004, B005) and the ack's signature, as soon as the quick way
            # has cut the whole file: the batch process would only wait for the workers' last checks meanwhile.
            checks: _HeaderChecks | None = None

            def cut(cut_header: BatchHeader, entries) -> None:
                nonlocal checks
                if head is not None:
                    head.start(cut_header, entries)  # first: the workers examine while the rest is done here
                checks = self._header_checks(cut_header, file_name, sha, received_at)

            header, count = self._scan(row, archived, spool, pool, workers, head, cut, keep_alive)
            if checks is None or checks.header is not header:  # the careful way read the file (maybe much later)
                checks = self._header_checks(header, file_name, sha, received_at)
            if not checks.sender_known:
                raise FileRefused(f"sender {header.sender_id} is not in the directory", code="B004")
            if count != header.item_count:
                raise FileRefused(f"the file holds {count} declarations, not ItemCount {header.item_count}",
                                  code="B006")
            other = checks.same_batch_id
            if other is not None and other.id != row.id:
                raise FileRefused(f"BatchId {header.batch_id} was already used by sender {header.sender_id} for "
                                  f"a file with SHA-256 {other.file_sha256}", code="B005")
            ack = checks.ack
            settling.wait(keep_alive)  # the ack says the file is archived
            try:
                with self.app.engine.begin() as connection:
                    if not batches.mark_received(connection, row.id, self.owner, sender_id=header.sender_id,
                                                 batch_id=header.batch_id, item_count=header.item_count,
                                                 received_at=received_at, ack=ack):
                        raise LeaseLost()
            except IntegrityError:  # the same BatchId taken by a concurrent file
                raise FileRefused(f"BatchId {header.batch_id} was already used by sender {header.sender_id} for "
                                  "another file", code="B005") from None
            self._write(f"{name}.ack.xml", ack)
            return header
        except FileRefused as refusal:
            if head is not None:
                head.discard()  # nothing of a refused file is decided
            batch_id = header.batch_id if header else getattr(refusal, "batch_id", None)
            ack = self._sign(batch_xml.ack_element(batch_id=batch_id, file_name=file_name, file_sha256=sha,
                                                   received_at=received_at, code=refusal.code,
                                                   message=refusal.message))
            settling.wait(keep_alive)
            with self.app.engine.begin() as connection:
                if not batches.mark_refused(connection, row.id, self.owner, code=refusal.code,
                                            received_at=received_at, ack=ack):
                    raise LeaseLost()
            self._write(f"{name}.ack.xml", ack)
            refusal.batch_id = batch_id
            return refusal

    def _header_checks(self, header: BatchHeader, file_name: str, sha: str, received_at) -> "_HeaderChecks":
        """What the first pass asks the store about the header, in one connection (whether the sender is in the
        directory, B004; another file with its BatchId, B005), and the ack it answers with if the file is
        taken. Only read and signed here: the first pass raises, in its order, once the whole file is read."""
        with self.app.engine.connect() as connection:
            known = DirectoryReader(connection).sender_exists(header.sender_id)
            other = batches.find_by_batch_id(connection, header.sender_id, header.batch_id) if known else None
        ack = self._sign(batch_xml.ack_element(batch_id=header.batch_id, file_name=file_name, file_sha256=sha,
                                               received_at=received_at))
        return _HeaderChecks(header, known, other, ack)

    def _lease_keeper(self, row) -> Callable[[], None]:
        """For the first pass, which writes nothing for a while: called often, it extends the claim's lease every
        quarter of it (raises LeaseLost if another process took the file meanwhile)."""
        beat, lease = time.monotonic(), self.settings.batch_lease_seconds

        def keep_alive() -> None:
            nonlocal beat
            if time.monotonic() - beat > lease / HEARTBEATS_PER_LEASE:
                beat = time.monotonic()
                with self.app.engine.begin() as connection:
                    if not batches.heartbeat(connection, row.id, self.owner, time.time() + lease):
                        raise LeaseLost()
        return keep_alive

    def _scan(self, row, archived: Path, spool: Spool, pool, workers: int, head: HeadStart | None,
              on_cut: Callable[[BatchHeader, Iterator], None],
              keep_alive: Callable[[], None]) -> tuple[BatchHeader, int]:
        """The file read whole (batch_scan.py): the quick way when there are worker processes to help,
        the careful way when there are none or the quick way stops. ``on_cut``: the quick way has cut the whole
        file (scan_quickly)."""
        limit = self.settings.max_batch_bytes
        scanned = None
        if pool is not None:
            scanned = scan_quickly(archived, limit, spool, pool, workers, keep_alive, on_cut=on_cut)
        if scanned is None:
            if head is not None:
                head.discard()  # read from a spool the careful way writes anew
            scanned = scan_carefully(archived, limit, spool, keep_alive)
        return scanned.header, scanned.count

    # -- the second pass: each declaration through the pipeline ------------------

    def _second_pass(self, row, archived: Path, header: BatchHeader, summary: Summary, pool, workers: int,
                     spool: Spool, head: HeadStart | None) -> None:
        with self.app.engine.connect() as connection:
            prefix, committed = batches.positions_stored(connection, row.id)
        counts = {"ACCEPTED": 0, "ACCEPTED_WITH_WARNINGS": 0, "REFUSED": 0}
        self.progress.started(summary, header.item_count, prefix + len(committed))
        # Items 1 to ``ahead`` were handed over in the first pass (not if its spool could not be finished:
        # the archive is read again).
        handed = head.handover(usable=spool.complete) if head is not None else None
        runner, ahead = handed or (items_runner(self.app, self._job(row, header), pool, workers), 0)
        if pool is not None:
            pool.turns.open()

        def completed(outcomes):
            for position, status in outcomes:
                counts[status] = counts.get(status, 0) + 1
                self.progress.advanced(status)
                _crash_point(f"item:{position}")

        declarations = self._declarations(archived, spool)
        position = 0
        try:
            for position, data in enumerate(declarations, 1):
                if position <= prefix or position in committed or position <= ahead:
                    continue
                completed(runner.submit(position, data))
            completed(runner.finish())
        except BaseException:
            runner.close()  # the items still queued are dropped, those running finish or fail
            raise
        finally:
            declarations.close()
        if position != header.item_count:  # never finish a batch with items missing
            raise RuntimeError(f"the second pass read {position} declarations, not the {header.item_count} "
                               "the first pass counted")
        summary.counts = {k.lower(): v for k, v in counts.items()}

    def _job(self, row, header: BatchHeader) -> BatchJob:
        return BatchJob(batch_pk=row.id, owner=self.owner, sender_id=header.sender_id, batch_id=header.batch_id,
                        max_item_bytes=self.settings.max_item_bytes, lease_seconds=self.settings.batch_lease_seconds)

    def _declarations(self, archived: Path, spool: Spool) -> Iterator[bytes | Spooled]:
        """Each declaration, in file order: where it is in the first pass's spool, or its bytes from the
        archived file again (a batch resumed after a crash, whose first pass ran in the process that died;
        or one whose spool could not be written)."""
        if spool.complete:
            yield from spool.entries()
            return
        items = stream_items(archived, self.settings.max_batch_bytes)
        try:
            next(items)  # the header, checked in the first pass
            for element in items:
                yield etree.tostring(element, with_tail=False)
        finally:
            items.close()

    def _pool(self, workers: int, file_name: str):
        """The file's worker processes; None to decide it in this process: a small file, or workers that
        cannot be started (the system refused the fork: the file is decided here, slower, not stopped)."""
        if workers <= 1:
            return None
        try:
            return self.workers.take(workers)
        except OSError as error:
            _event("batch.workers_unavailable", logging.WARNING, file=file_name, workers=workers, message=str(error))
            return None

    def _workers_for(self, size: int) -> int:
        """Worker processes for a file of ``size`` bytes: starting them costs about a second of CPU, so a
        small file is decided in this process (docs/batch.md "Parallel items")."""
        return 1 if size < self.settings.batch_parallel_min_bytes else self.settings.batch_workers

    def _result(self, row, header: BatchHeader, file_name: str, sha: str) -> Path:
        """The signed BatchResult, streamed into the archive (aside, fsync, rename) as <sha256>.result.xml."""
        counts = batches.status_counts(self.app.engine, row.id)

        def write(out):
            batch_xml.write_result(out, signer=self.app.signer, batch_id=header.batch_id, file_name=file_name,
                                   file_sha256=sha, counts=counts,
                                   signed_results=batches.signed_results(self.app.engine, row.id))

        return write_atomic(self.settings.archive, f"{sha}.result.xml", write)

    def _archived_result(self, sha: str) -> Path:
        return self.settings.archive / f"{sha}.result.xml"

    # -- outbox and inbox ---------------------------------------------------------

    def _sign(self, element: etree._Element) -> bytes:
        return to_bytes(self.app.signer.sign(element))

    def _write(self, name: str, data: bytes) -> None:
        write_atomic(self.settings.outbox, name, data)

    def _answer(self, name: str, ack: bytes | None, result: bytes | None, sha: str) -> None:
        if ack:
            self._write(f"{name}.ack.xml", ack)
        if result:  # a BatchResult kept in the row (before they were streamed to the archive)
            self._write(f"{name}.result.xml", result)
        else:
            copy_atomic(self.settings.outbox, f"{name}.result.xml", self._archived_result(sha))

    def _clean(self, go_path: Path, go_text: bytes, data_path: Path, seen: os.stat_result) -> None:
        """Remove the taken upload from the inbox (the bytes are in the archive): the .go first, so that
        the file is never taken again; each only if it is still the one taken (not a new upload)."""
        try:
            if go_path.read_bytes() == go_text:
                go_path.unlink()
        except FileNotFoundError:
            pass
        try:
            now = data_path.stat()
            if (now.st_size, now.st_mtime_ns, now.st_ino) == (seen.st_size, seen.st_mtime_ns, seen.st_ino):
                data_path.unlink()
        except FileNotFoundError:
            pass


def process_inbox_once(app, progress: Progress | None = None, workers: BatchWorkers | None = None) -> list[Summary]:
    """Take every complete batch in the inbox now, one after the other; a summary per file seen.

    For ``serve``: call it in a background loop (e.g. every few seconds), with the loop's ``workers``
    (``BatchWorkers(app, keep=True)``: kept from one file to the next); without, each file that needs worker
    processes starts its own. Safe to run in several processes at once over one database and one inbox:
    each file is claimed by exactly one.
    """
    return Inbox(app, progress, workers).run_once()


def put(settings, source: Path) -> Path:
    """``batch put``: copy a batch file into the inbox as a sender would: NAME.xml[.gz] aside, renamed,
    then NAME.go with its SHA-256."""
    file_name = source.name
    if file_name.endswith(".xml.gz"):
        name = file_name[:-7]
    elif file_name.endswith(".xml"):
        name = file_name[:-4]
    else:
        raise ValueError(f"{file_name}: a batch file is NAME.xml or NAME.xml.gz")
    problem = name_problem(name)
    if problem:
        raise ValueError(f"{file_name}: {problem}")
    data = source.read_bytes()
    write_atomic(settings.inbox, file_name, data)
    write_atomic(settings.inbox, f"{name}.go", (hashlib.sha256(data).hexdigest() + "\n").encode())
    return settings.inbox / file_name


def _drop_stale_uploads(archive: Path) -> None:
    """Remove the aside copies (``.upload.<host>.<pid>.<token>.<random>.tmp.xml[.gz]``) that a process killed
    meanwhile left behind: a dead process of this host's, or any older than a day (_Settling keeps one for
    the whole first pass)."""
    for stale in archive.glob(".upload.*.tmp.xml*"):
        owner = stale.name[len(".upload."):].partition(".tmp.xml")[0].rpartition(".")[0]  # less <random>
        remove_if_stale(stale, owner, _owner_is_gone)


@dataclass(frozen=True)
class _HeaderChecks:
    """Inbox._header_checks: what the store says about a header, and the ack if the file is taken."""
    header: BatchHeader
    sender_known: bool
    same_batch_id: batches.BatchRow | None
    ack: bytes


_SETTLING_BEAT_SECONDS = 1.0


class _Settling:
    """An upload's archived copy made durable (fsync) and given its SHA-256 name in a thread, while the file
    is claimed and read: the fsync of a 34 MB file took 10-90 ms here, and it was the first thing on every
    batch's way. ``path`` stays readable until ``wait``, which returns the final name once the copy is there
    for good. Only a durable copy gets the final name: a copy cut short by a power loss never passes for
    the archived file (``_archive`` keeps the one already there).
    """

    def __init__(self, aside: Path, final: Path):
        self.path, self._final = aside, final
        self._error: BaseException | None = None
        self._synced = False
        self._thread = threading.Thread(target=self._settle, name="archive-fsync", daemon=True)
        self._thread.start()

    def _settle(self) -> None:
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            self._synced = True
            # A second name rather than a rename: whoever reads ``path`` meanwhile (the careful way opens it
            # again after the quick way stopped) still finds it. Renamed in wait() where there are no links.
            os.link(self.path, self._final)
        except FileExistsError:  # archived before (a retry, a resumed batch, another process)
            pass
        except BaseException as error:  # noqa: BLE001 -- raised by wait(), in the batch's own thread
            self._error = error

    def wait(self, keep_alive: Callable[[], None] | None = None) -> Path:
        """The archived copy's final name, once the copy is durable; the aside name is gone then.
        ``keep_alive`` is called every second meanwhile (the first pass's: a slow fsync of a large file must
        not let the claim's lease run out)."""
        while self._thread.is_alive():
            self._thread.join(_SETTLING_BEAT_SECONDS)
            if keep_alive is not None and self._thread.is_alive():
                keep_alive()
        if not self._synced:
            raise self._error or RuntimeError(f"{self.path} was not made durable")
        if self.path.exists():
            if self._final.exists():
                self.path.unlink()
            else:  # os.link failed (a file system without hard links)
                os.replace(self.path, self._final)
        return self._final

    def join(self) -> None:
        """Wait without raising, on the way out of a batch that stopped for another reason (which is the
        one to report)."""
        try:
            self.wait()
        except Exception:  # noqa: BLE001
            log.exception("the archived copy %s could not be settled", self.path)
