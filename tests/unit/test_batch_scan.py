"""The first pass's quick way (services/batch_scan.scan_quickly) never says more than the careful way.

Oracle: the careful way (lxml streams the whole file). Whenever the quick way accepts a file, the careful way
accepts it too, with the same header and count, and the declarations the quick way spooled read as the ones
the careful way spooled. Checked on files written to mislead it and on thousands of random mutations of a
good one. The workers are real processes (a forked pool, as a batch has)."""

from __future__ import annotations

import concurrent.futures as futures
import gzip
import multiprocessing
import random

import pytest
from lxml import etree

from declarations import ns
from declarations.services import batch_scan
from declarations.services.batch_scan import FileRefused, scan_carefully, scan_quickly
from declarations.services.batch_spool import Spool
from declarations.xmlio import parsing

HEAD = (b"<BatchHeader><BatchId>B1</BatchId><SenderId>2001</SenderId><CreationDateTime>2025-10-02T10:00:00Z"
        b"</CreationDateTime><ItemCount>3</ItemCount></BatchHeader>")
DMFA = (b'<DmfA xmlns="urn:declarations:dmfa:v1" id="a&gt;b"><Quarter>20253</Quarter>'
        b'<Note a="x &gt; y" b=\'1\'>caf\xc3\xa9 &amp; &#233; <Empty/><x:In xmlns:x="urn:x" x:a="1">t</x:In></Note>'
        b'<NaturalPerson><INSS>1</INSS></NaturalPerson><NaturalPerson><INSS>2</INSS></NaturalPerson></DmfA>')
DIMONA = b'<Dimona xmlns="urn:declarations:dimona:v1" ><Header><MessageId>m</MessageId></Header></Dimona >'
SOCIAL = b'<SocialRisk xmlns=\'urn:declarations:drs:v1\'/>'


def batch(*children: bytes, between: bytes = b"\n  ", head: bytes = HEAD, after: bytes = b"\n") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch xmlns="' + ns.BATCH.encode() + b'">\n  ' + head
            + between + between.join(children) + b"\n</Batch>" + after)


GOOD = batch(DMFA, DIMONA, SOCIAL)


@pytest.fixture(scope="module")
def pool():
    with futures.ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as executor:
        yield executor


def _spooled(spool: Spool) -> list[bytes]:
    return [entry.read() for entry in spool.entries()] if spool.complete else []


def _canonical(data: bytes) -> list:
    """What a reader of the declaration sees: tags, attributes, text, tails (not the root's, outside it)."""
    root = etree.fromstring(data)
    return [(e.tag, sorted(e.attrib.items()) if isinstance(e.tag, str) else None, e.text,
             e.tail if e is not root else None) for e in root.iter()]


class Scans:
    def __init__(self, tmp_path, pool):
        self.tmp_path, self.pool, self.n = tmp_path, pool, 0

    def _path(self, data: bytes, gz: bool):
        self.n += 1
        path = self.tmp_path / (f"f{self.n}.xml.gz" if gz else f"f{self.n}.xml")
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    def quick(self, data: bytes, gz: bool = False, limit: int = 1 << 30):
        spool = Spool(self.tmp_path, f"q{self.n}", "host:1:quick")
        scanned = scan_quickly(self._path(data, gz), limit, spool, self.pool, 2, lambda: None)
        if scanned is None:
            assert not spool.path.exists()  # what it spooled is gone: the careful way writes its own
            return None
        pieces = _spooled(spool)
        spool.remove()
        return scanned, pieces

    def careful(self, data: bytes, gz: bool = False, limit: int = 1 << 30):
        spool = Spool(self.tmp_path, f"c{self.n}", "host:1:careful")
        try:
            scanned = scan_carefully(self._path(data, gz), limit, spool, lambda: None)
        except FileRefused as refusal:
            spool.remove()
            return refusal.code
        pieces = _spooled(spool)
        spool.remove()
        return scanned, pieces

    def agree(self, data: bytes, gz: bool = False) -> bool:
        """The oracle. True when the quick way accepted the file."""
        quick = self.quick(data, gz)
        if quick is None:
            return False
        careful = self.careful(data, gz)
        assert not isinstance(careful, str), f"the quick way accepted what the careful way refuses ({careful})"
        (q, q_pieces), (c, c_pieces) = quick, careful
        assert (q.header, q.count) == (c.header, c.count)
        assert [_canonical(p) for p in q_pieces] == [_canonical(p) for p in c_pieces]
        assert all(piece in data for piece in q_pieces) or gz  # the sender's bytes, unchanged
        return True


@pytest.fixture
def scans(tmp_path, pool):
    return Scans(tmp_path, pool)


@pytest.mark.parametrize("gz", [False, True])
def test_a_good_file_is_read_the_quick_way_with_the_same_answer(scans, gz):
    assert scans.agree(GOOD, gz)
    scanned, pieces = scans.quick(GOOD, gz)
    assert pieces == [DMFA, DIMONA, SOCIAL]  # exactly as written
    assert (scanned.header.batch_id, scanned.header.sender_id, scanned.count) == ("B1", "2001", 3)


@pytest.mark.parametrize("gz", [False, True])
def test_at_the_limit_the_careful_way_answers(scans, gz, monkeypatch):
    """A file over the limit whose first declaration is not well-formed: B002 (found before the limit), not
    B007, whichever way the file is read. The quick way meets the limit before the workers' checks are in:
    it stops, and the careful way answers (found by the session-8 review: the answer hung on the setting)."""
    monkeypatch.setattr(batch_scan, "CHUNK", 1000)  # read in pieces, as a file of megabytes is
    data = batch(DIMONA.replace(b"</Dimona >", b"</Dimon >"), *[DMFA] * 40)
    limit = len(data) - 100
    assert scans.quick(data, gz, limit) is None
    assert scans.careful(data, gz, limit) == "B002"
    assert scans.careful(batch(*[DMFA] * 40), gz, limit) == "B007"  # and a good one is B007


def test_the_size_of_the_reads_changes_nothing(scans, monkeypatch):
    for chunk in (1, 7, 64, 1000):
        monkeypatch.setattr(batch_scan, "CHUNK", chunk)
        assert scans.quick(GOOD)[1] == [DMFA, DIMONA, SOCIAL]


def test_many_declarations_go_to_the_workers_in_runs(scans, monkeypatch):
    monkeypatch.setattr(batch_scan, "RUN_BYTES", 300)  # a run every two or so: many runs, some waiting
    data = batch(*[DMFA.replace(b"<INSS>1<", b"<INSS>%d<" % n) for n in range(40)],
                 head=HEAD.replace(b">3<", b">40<"))
    assert scans.agree(data)
    bad = data.replace(b"<INSS>37<", b"<q:INSS>37<", 1)  # an undeclared prefix, in a late run
    assert scans.quick(bad) is None and scans.careful(bad) == "B002"


def test_the_first_declaration_goes_to_the_workers_at_once_then_runs_of_run_bytes(tmp_path, monkeypatch):
    """The workers wait for the first pass's first run: it is the first declaration alone (a DmfA of 1,000
    workers is ~850 KB: with two in the first run, the workers started ~5 ms later); then runs of RUN_BYTES."""
    monkeypatch.setattr(batch_scan, "RUN_BYTES", 1000)
    sent = []

    class Workers:
        def submit(self, function, run):
            sent.append(len(list(run.pieces())))
            done = futures.Future()
            done.set_result(True)
            return done

    spool = Spool(tmp_path, "s", "host:1:runs")
    spool.open()
    checks = batch_scan._WellFormedChecks(Workers(), 2, spool)
    for _ in range(7):  # 308 bytes each in the spool (its length in front)
        spool.add(b"x" * 300)
        checks.added(spool)
    assert checks.all_well_formed(spool)
    assert sent == [1, 4, 2]


@pytest.mark.parametrize("name, data, careful", [
    # not well-formed in a way only namespaces or the file's depth show: the declaration's parse says it
    ("undeclared prefix", batch(DMFA.replace(b"<Empty/>", b"<p:Empty/>"), DIMONA, SOCIAL), "B002"),
    ("two attributes one name", batch(DMFA.replace(b'x:a="1"', b'x:a="1" xmlns:y="urn:x" y:a="2"'), DIMONA,
                                      SOCIAL), "B002"),
    # the envelope: bytes on either side of a declaration that would read as one without it
    # (``&am`` just before the Dimona, ``p;`` just after it: only the placeholder keeps them apart)
    ("entity cut by a declaration", GOOD.replace(b"<Dimona", b"&am<Dimona", 1).replace(
        b"</Dimona >", b"</Dimona >p;", 1), "B002"),
    ("truncated", GOOD[:-30], "B002"),
    ("not closed", GOOD.replace(b"</Batch>", b""), "B002"),
    ("after the root", GOOD + b"<More/>", "B002"),
    ("bad UTF-8 inside", batch(DMFA.replace(b"caf\xc3\xa9", b"caf\xe9"), DIMONA, SOCIAL), "B002"),
    ("doctype", GOOD.replace(b"<Batch", b"<!DOCTYPE Batch>\n<Batch", 1), "B002"),
    ("end tag of another name", batch(DMFA.replace(b"</Note>", b"</Nope>"), DIMONA, SOCIAL), "B002"),
    ("unclosed inside", batch(DMFA.replace(b"<Empty/>", b"<Empty>"), DIMONA, SOCIAL), "B002"),
    ("a Batch of something else", batch(DMFA, b'<Other xmlns="urn:o"/>', SOCIAL), "B002"),
    ("a bad header", GOOD.replace(b"<SenderId>2001</SenderId>", b""), "B003"),
    ("no header", batch(DMFA, DIMONA, SOCIAL, head=b""), "B003"),
    ("another root", GOOD.replace(b"Batch xmlns", b"Bunch xmlns").replace(b"</Batch>", b"</Bunch>"), "B002"),
])
def test_what_is_wrong_the_quick_way_leaves_to_the_careful_way(scans, name, data, careful):
    assert scans.quick(data) is None
    assert scans.careful(data) == careful


@pytest.mark.parametrize("name, data", [
    ("a comment between", batch(DMFA, DIMONA, SOCIAL, between=b"\n  <!-- next -->\n  ")),
    ("a comment inside", batch(DMFA.replace(b"<Empty/>", b"<!-- x --><Empty/>"), DIMONA, SOCIAL)),
    ("CDATA inside", batch(DMFA.replace(b"<Empty/>", b"<![CDATA[</DmfA>]]>"), DIMONA, SOCIAL)),
    ("prefixed", batch(DMFA.replace(b"<DmfA xmlns=", b"<d:DmfA xmlns:d=").replace(b"</DmfA>", b"</d:DmfA>")
                       .replace(b"<Quarter>", b"<d:Quarter>").replace(b"</Quarter>", b"</d:Quarter>")
                       .replace(b"<Note ", b"<d:Note ").replace(b"</Note>", b"</d:Note>")
                       .replace(b"<NaturalPerson>", b"<d:NaturalPerson>")
                       .replace(b"</NaturalPerson>", b"</d:NaturalPerson>"), DIMONA, SOCIAL)),
    ("latin-1", GOOD.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(b"caf\xc3\xa9", b"caf\xe9")),
])
def test_a_good_file_the_quick_way_cannot_cut_is_read_the_careful_way(scans, name, data):
    assert scans.quick(data) is None
    assert not isinstance(scans.careful(data), str)


def test_one_level_deeper_in_the_file_than_alone(scans):
    """libxml2 limits the depth of a document: a declaration as deep as the limit parses alone, not inside
    the Batch. The quick way parses it one level down, as in the file."""
    depth = 1
    while True:  # the deepest document the parser takes
        try:
            parsing.parse(b"<a>" * (depth + 1) + b"</a>" * (depth + 1))
        except Exception:  # noqa: BLE001 -- MalformedXml: too deep
            break
        depth += 1
    deep = (b'<DmfA xmlns="urn:declarations:dmfa:v1">' + b"<a>" * (depth - 1) + b"</a>" * (depth - 1) + b"</DmfA>")
    parsing.parse(deep)  # alone: fine
    data = batch(deep, DIMONA, SOCIAL)
    assert scans.careful(data) == "B002"
    assert scans.quick(data) is None


_NOISE = [b"<", b">", b"&", b";", b"/", b'"', b"'", b"!", b"?", b":", b"=", b" ", b"x:", b"<!--", b"-->", b"]]>",
          b"&am", b"</DmfA>", b"<DmfA>", b"<Dimona ", b"\xff", b"\xc3", b"xmlns=\"u\"", b"<_/>", b"</Batch>"]


def test_random_mutations_of_a_good_file(scans):
    """Thousands of files one mutation away from a good one: the quick way accepts some, refuses many, and
    never accepts what the careful way refuses (or reads it otherwise)."""
    rng = random.Random(20261124)
    accepted = refused = 0
    for _ in range(1500):
        data = bytearray(GOOD)
        for _ in range(rng.choice((1, 1, 2))):
            at = rng.randrange(len(data))
            operation = rng.randrange(4)
            if operation == 0:
                del data[at:at + rng.randint(1, 3)]
            elif operation == 1:
                data[at:at] = rng.choice(_NOISE)
            elif operation == 2:
                data[at] = rng.choice(b" \n<>&;/=\"'abx")
            else:  # a stretch of the file again, elsewhere
                start = rng.randrange(len(data))
                data[at:at] = data[start:start + rng.randint(1, 40)]
        if scans.agree(bytes(data)):
            accepted += 1
        else:
            refused += 1
    # The mutations reach both sides (with this seed: 61 files the quick way accepts, 1,439 it leaves).
    assert accepted > 20 and refused > 1000
