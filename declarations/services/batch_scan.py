"""A batch file's first pass: read whole once before anything is stored; its header, its count, and each
declaration's bytes to the spool. Refusals: B002 (not well-formed anywhere, or not a Batch of Dimona,
DmfA and SocialRisk), B003 (the BatchHeader), B007 (the limit, compressed or not).

Two ways, one answer:

- **The careful way** (``scan_carefully``): lxml streams the file (iterparse) and reports each child of the
  root; ChildBytes, fed the same bytes, cuts each declaration out of them where it can (else lxml writes the
  element out again). It decides every file: the refusals and their messages are its.
- **The quick way** (``scan_quickly``, when the batch has worker processes): no tree of the whole file at
  all. ChildBytes cuts each child out of the bytes as they are read; the worker processes parse each
  declaration as it parses inside the file (``parsing.well_formed_inside``) while this process reads on;
  and libxml2 reads what is left (the envelope: the root, the white space between children, a placeholder
  for each) with no tree and no Python call per element. If the envelope and every child are well-formed,
  so is the file (each child is a whole element, cut where its element content starts and ends, with
  nothing declared outside itself: batch_slices.py), and the cuts are exact. This costs the batch process
  ~1 ms per MB instead of ~11 (iterparse: a tree of every element, then cleared), and the workers were idle
  during the first pass anyway.

The quick way never refuses: at anything it does not expect (a parse error, a cut that is not certain, a
header or a child to look at closer, a broken gzip stream) it stops and the careful way reads the file from
the start, so every answer and message stays the careful way's. It only says "this file is fine: its header,
its count, and the spool holds each declaration".
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import gzip
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from lxml import etree

from declarations import ns
from declarations.exceptions import InputRefused, MalformedXml
from declarations.services.batch_items import well_formed_in_worker
from declarations.services.batch_spool import Spool, SpooledRun
from declarations.xmlio import parsing, schemas
from declarations.xmlio.batch_slices import ChildBytes

BATCH = f"{{{ns.BATCH}}}Batch"
HEADER = f"{{{ns.BATCH}}}BatchHeader"
CHUNK = 1024 * 1024
# The quick way's well-formedness checks: a run of declarations per task, at most this many bytes (a
# Dimona is ~5 KB: one task each would cost more in messages than in parsing), and at most
# RUNS_PER_WORKER runs waiting per worker (memory stays bounded; the reading waits for the workers). The
# first run is the first declaration alone: the workers have nothing else to do until it comes.
RUN_BYTES = 1024 * 1024
RUNS_PER_WORKER = 2


class FileRefused(InputRefused):
    """A file-level refusal (B001-B007)."""


@dataclass
class BatchHeader:
    batch_id: str
    sender_id: str
    item_count: int


@dataclass
class Scanned:
    header: BatchHeader
    count: int  # the declarations in the file (B006 compares it with ItemCount)


# -- reading the file ---------------------------------------------------------------------------------------

class _Limited:
    """A binary reader that stops at the batch limit (B007), for the compressed and the uncompressed bytes."""

    def __init__(self, raw, limit: int, tap: Callable[[bytes], None] | None = None):
        self.raw, self.limit, self.count, self.tap = raw, limit, 0, tap

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        self.count += len(data)
        if self.count > self.limit:
            raise FileRefused(f"the file is larger than the limit of {self.limit} bytes once uncompressed",
                              code="B007")
        if self.tap is not None:  # what the parser reads, uncompressed (batch_slices.ChildBytes)
            self.tap(data)
        return data


def _open(path: Path, limit: int, tap=None):
    raw = open(path, "rb")
    if not path.name.endswith(".gz"):
        return _Limited(raw, limit, tap), raw
    return _Limited(gzip.GzipFile(fileobj=raw, mode="rb"), limit, tap), raw


def stream_items(path: Path, limit: int, tap: Callable[[bytes], None] | None = None):
    """(header, then each declaration element) of a Batch file (``.xml`` or ``.xml.gz``), streamed; raises
    FileRefused for B002/B007. ``tap`` is given every byte the parser reads, uncompressed, in order."""
    reader, raw = _open(path, limit, tap)
    try:
        children = stream_children(reader)
        root = next(children)
        if root.tag != BATCH:
            raise FileRefused(f"the root element is {_local(root.tag)}, not a Batch in {ns.BATCH}", code="B002")
        yield from children
    except MalformedXml as error:
        raise FileRefused(f"{error.message}" + (f" ({error.location})" if error.location else ""),
                          code="B002") from None
    except (OSError, EOFError, zlib.error) as error:  # a broken or truncated gzip stream
        raise FileRefused(f"the gzip stream cannot be read: {error}", code="B002") from None
    finally:
        raw.close()


def stream_children(stream):
    """The Batch file's root, then each child of the root (parsing.stream_reported_children). The floor
    of bench/batch.py reads with it too."""
    return parsing.stream_reported_children(stream, BATCH, (HEADER, *ns.KIND_BY_ROOT))


def _local(tag: str) -> str:
    """A tag's local name. (etree.QName raises on a name libxml2 kept with an undeclared prefix, "b:Batch",
    before it reports the error.)"""
    return tag.rpartition("}")[2]


def read_header(element: etree._Element) -> BatchHeader:
    if element.tag != HEADER:
        raise FileRefused(f"the Batch starts with {_local(element.tag)}, not a BatchHeader", code="B003")
    problems = schemas.problems(element)
    if problems:
        raise FileRefused("; ".join(f"{p.location}: {p.message}" for p in problems), code="B003")
    text = lambda name: element.findtext(f"{{{ns.BATCH}}}{name}").strip()  # noqa: E731
    return BatchHeader(text("BatchId"), text("SenderId"), int(text("ItemCount")))


# -- the careful way ----------------------------------------------------------------------------------------

def scan_carefully(path: Path, limit: int, spool: Spool, keep_alive: Callable[[], None]) -> Scanned:
    """Stream the whole file once: the header (B003), well-formed to the end (B002), the count. Each
    declaration's bytes go to ``spool``: as the sender wrote them where ChildBytes can cut them out with
    certainty (~1 ms for a 1,000-worker DmfA), else as lxml writes the element (~3 ms)."""
    header = None
    count = 0
    cuts = ChildBytes(ns.BATCH, "Batch")
    items = stream_items(path, limit, tap=cuts.feed)
    spool.open()
    try:
        for element in items:
            cut = cuts.next()  # None once ChildBytes gave up (what follows was not certain)
            if cut is None or cut.tag != element.tag:  # (a tag never differs: a belt to the braces)
                cuts.give_up()
                cut = None
            if header is None:
                header = read_header(element)
                continue
            if element.tag not in ns.KIND_BY_ROOT:
                namespace = element.tag[1:].partition("}")[0] if element.tag.startswith("{") else "no namespace"
                raise FileRefused(f"element {count + 2} of the Batch is {_local(element.tag)} in {namespace}, "
                                  "not a Dimona, DmfA or SocialRisk", code="B002")
            count += 1
            if cut is not None and cut.standalone:
                spool.add(cut.data)
            else:
                cuts.give_up()  # (one that borrows the Batch namespace: lxml writes it with its own)
                spool.add(etree.tostring(element, with_tail=False))
            keep_alive()
        spool.close()
    except FileRefused as refusal:
        refusal.batch_id = header.batch_id if header else None
        raise
    finally:
        items.close()
    if header is None:
        raise FileRefused("the Batch has no BatchHeader", code="B003")
    return Scanned(header, count)


# -- the quick way ------------------------------------------------------------------------------------------

class _NoTree:
    """A parser target that takes nothing: libxml2 checks the bytes and builds nothing. A DOCTYPE is
    noted (the careful way refuses it)."""

    def __init__(self):
        self.doctype_seen = False

    def doctype(self, *_):
        self.doctype_seen = True

    def close(self):
        return None


class _Stop(Exception):
    """The quick way stops: the careful way reads the file."""


def scan_quickly(path: Path, limit: int, spool: Spool, pool, workers: int,
                 keep_alive: Callable[[], None],
                 on_cut: Callable[[BatchHeader, Iterator], None] | None = None) -> Scanned | None:
    """The header and the count of a file that is certainly fine, with each declaration in ``spool``; None
    when the careful way must read it (the spool is then removed), also at the limit (B007): a declaration
    before it that is not well-formed makes it B002, and the workers' checks of it may not be in yet.
    Raises only what ``keep_alive`` and ``on_cut`` raise, and a dead worker's BrokenProcessPool.
    ``on_cut(header, spool entries)``: the whole file is cut and every run of checks is with the workers, only
    their answers are awaited (batch_items.HeadStart, the header's checks: Inbox._first_pass)."""
    target = _NoTree()
    envelope = etree.XMLParser(target=target, **parsing.PARSER_OPTIONS)
    cuts = ChildBytes(ns.BATCH, "Batch", envelope=envelope.feed)
    checks = _WellFormedChecks(pool, workers, spool)
    reader, raw = _open(path, limit)
    header, count = None, 0
    spool.open()
    try:
        while data := reader.read():
            cuts.feed(data)
            while (child := cuts.next()) is not None:
                if header is None:
                    header = _quick_header(child)
                    continue
                if child.tag not in ns.KIND_BY_ROOT or not child.standalone:
                    raise _Stop()
                count += 1
                spool.add(child.data)
                checks.added(spool)
                keep_alive()
            if not cuts.usable or not spool.writing:
                raise _Stop()
        envelope.close()
        if not cuts.finished or header is None or target.doctype_seen:
            raise _Stop()
        checks.send_rest(spool)
        if on_cut is not None:
            with contextlib.closing(spool.entries()) as entries:
                on_cut(header, entries)
        if not checks.all_well_formed(spool):
            raise _Stop()
        spool.close()
        return Scanned(header, count)
    except (_Stop, FileRefused, etree.XMLSyntaxError, OSError, EOFError, zlib.error):
        spool.remove()
        return None
    finally:
        checks.cancel()
        raw.close()


def _quick_header(child) -> BatchHeader:
    """The BatchHeader read as in the file (inside a Batch root); anything to say about it: _Stop."""
    if child.tag != HEADER:
        raise _Stop()
    try:
        root = parsing.parse(b'<Batch xmlns="%s">%s</Batch>' % (ns.BATCH.encode(), child.data))
        return read_header(root[0])
    except (MalformedXml, FileRefused, AttributeError, ValueError):
        raise _Stop() from None


class _WellFormedChecks:
    """The worker processes parse the declarations written to the spool, a run at a time, while the
    batch process reads on."""

    def __init__(self, pool, workers: int, spool: Spool):
        self._pool, self._limit = pool, max(1, workers) * RUNS_PER_WORKER
        self._waiting: deque = deque()
        self._run_start = 0  # where the declarations not sent yet start in the spool
        self._sent_any = False
        self.failed = False

    def added(self, spool: Spool) -> None:
        """A declaration was added to ``spool``: send the run once it is long enough (the first at once)."""
        if spool.written - self._run_start >= RUN_BYTES or not self._sent_any:
            self._send(spool)

    def send_rest(self, spool: Spool) -> None:
        """The declarations not sent yet, as the last run."""
        self._send(spool)

    def all_well_formed(self, spool: Spool) -> bool:
        self._send(spool)
        while self._waiting and not self.failed:
            self._collect()
        return not self.failed

    def cancel(self) -> None:
        """Drop the checks not started; wait for those a worker has taken already (at most a run each, and
        the few the pool queued ahead), so that none of them still runs when the file is over: ``serve``
        keeps the workers for the next file (batch_items.BatchWorkers; found by the session-8 review)."""
        started = [future for future in self._waiting if not future.cancel()]
        self._waiting.clear()
        futures.wait(started)

    def _send(self, spool: Spool) -> None:
        if spool.written == self._run_start:
            return
        spool.flush()  # the worker reads the file
        run = SpooledRun(str(spool.path), self._run_start, spool.written - self._run_start)
        self._waiting.append(self._pool.submit(well_formed_in_worker, run))
        self._sent_any = True
        self._run_start = spool.written
        while len(self._waiting) > self._limit and not self.failed:
            self._collect()
        if self.failed:
            raise _Stop()

    def _collect(self) -> None:
        if not self._waiting.popleft().result():
            self.failed = True
