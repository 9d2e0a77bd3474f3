"""The batch inbox (channels.md "Batch"), on SQLite and PostgreSQL: lifecycle, answers, refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from declarations import ns, samples
from declarations.bootstrap import App
from declarations.services.batch import process_inbox_once
from declarations.store import tables as t
from declarations.xmlio import batch_xml, parsing, schemas, signature

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import batch as gen  # noqa: E402


@pytest.fixture(scope="module")
def signer():
    return gen.signer_2001()


@pytest.fixture
def box(app, tmp_path):
    """The engine with its own inbox, outbox and archive for this test."""
    settings = dataclasses.replace(app.settings, inbox=tmp_path / "inbox", outbox=tmp_path / "outbox",
                                   archive=tmp_path / "archive")
    application = App(settings)
    application.__dict__["signer"] = app.signer
    yield application
    application.close()


def declarations_stored(app) -> int:
    with app.engine.connect() as c:
        return c.execute(select(func.count()).select_from(t.declaration)).scalar_one()


def answer(app, name):
    root = parsing.parse((app.settings.outbox / name).read_bytes())
    assert schemas.problems(root) == []
    signature.verify(root)  # signed by the engine, in the profile
    return batch_xml.read_answer(root)


def test_a_batch_is_acknowledged_processed_and_answered(box, signer):
    items = gen.dimona_items(signer, 4, bad=[1])
    data = gen.batch_bytes(batch_id="B-1", items=items)
    gen.put(box.settings.inbox, "q4", data)
    (summary,) = process_inbox_once(box)
    assert summary.outcome == "DONE" and summary.counts == {"accepted": 3, "accepted_with_warnings": 0, "refused": 1}
    sha = hashlib.sha256(data).hexdigest()
    ack = answer(box, "q4.ack.xml")
    assert (ack["status"], ack["batch_id"], ack["file_name"], ack["file_sha256"]) == ("RECEIVED", "B-1", "q4.xml", sha)
    result = answer(box, "q4.result.xml")
    assert (result["accepted"], result["accepted_with_warnings"], result["refused"]) == (3, 0, 1)
    assert [r.findtext(f"{{{ns.RESULT}}}MessageId") for r in result["results"]] == [f"bdim-{i}" for i in range(4)]
    assert all(r.find(f"{{{ns.DS}}}Signature") is None for r in result["results"])
    assert (box.settings.archive / f"{sha}.xml").read_bytes() == data
    assert list(box.settings.inbox.iterdir()) == []  # taken: removed from the inbox
    assert declarations_stored(box) == 4
    # A retry (same BatchId, same bytes): the first answers again, nothing processed twice.
    first = {n: (box.settings.outbox / n).read_bytes() for n in ("q4.ack.xml", "q4.result.xml")}
    gen.put(box.settings.inbox, "q4", data)
    (again,) = process_inbox_once(box)
    assert again.outcome == "RETRY" and declarations_stored(box) == 4
    assert {n: (box.settings.outbox / n).read_bytes() for n in first} == first
    assert process_inbox_once(box) == []


def test_a_gzip_batch_and_an_item_of_another_sender(box, signer, demo_signer):
    items = gen.dimona_items(signer, 2)
    other = [demo_signer("sender-1001").sign(samples.dimona(  # its own employer: C008 is the only anomaly
        "In", message_id="own-0", sender_id="1001", noss="123456749", INSS=samples.inss_series(3)[2],
        StartingDate=dt.date(2025, 11, 15), JointCommissionNbr="302", WorkerType="OTH"))]
    data = gzip.compress(gen.batch_bytes(batch_id="B-gz", items=[items[0], other[0], items[1]]))
    gen.put(box.settings.inbox, "mixed", data, gz=True)
    (summary,) = process_inbox_once(box)
    assert summary.outcome == "DONE"
    result = answer(box, "mixed.result.xml")
    codes = [[a.findtext(f"{{{ns.RESULT}}}Code") for a in r.iterfind(f"{{{ns.RESULT}}}Anomaly")]
             for r in result["results"]]
    assert codes == [[], ["C008"], []] and result["file_name"] == "mixed.xml.gz"


def _bomb() -> bytes:
    return gzip.compress(gen.header_bytes("B-bomb", "2001", 1) + b"<!-- " + b"x" * 2_000_000 + b" -->")


CASES = {
    "truncated": (lambda b: b[: len(b) // 2], None, "B002"),
    "empty file": (lambda b: b"", None, "B002"),
    "wrong hash": (lambda b: b, b"0" * 64 + b"\n", "B001"),
    "zero-byte go": (lambda b: b, b"", "B001"),
    # channels.md: the SHA-256 "optionally followed by a newline": one, not two
    "go with two newlines": (lambda b: b, lambda data: hashlib.sha256(data).hexdigest().encode() + b"\n\n", "B001"),
    "a DTD": (lambda b: b.replace(b"<Batch ", b'<!DOCTYPE Batch [<!ENTITY e "x">]><Batch ', 1), None, "B002"),
    "not a Batch": (lambda b: b.replace(b"<Batch ", b"<Lot ").replace(b"</Batch>", b"</Lot>"), None, "B002"),
    "header not valid": (lambda b: b.replace(b"<SenderId>2001</SenderId>", b"<SenderId>x</SenderId>", 1), None,
                         "B003"),
    "unknown sender": (lambda b: b.replace(b"<SenderId>2001</SenderId>", b"<SenderId>4242</SenderId>", 1), None,
                       "B004"),
    "ItemCount wrong": (lambda b: b.replace(b"<ItemCount>2</ItemCount>", b"<ItemCount>3</ItemCount>"), None, "B006"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_level_refusal_stores_nothing_and_the_inbox_keeps_working(box, signer, case):
    change, go, code = CASES[case]
    good = gen.batch_bytes(batch_id="B-2", items=gen.dimona_items(signer, 2))
    bad = change(good)
    gen.put(box.settings.inbox, "bad", bad, go=go(bad) if callable(go) else go)
    (summary,) = process_inbox_once(box)
    assert (summary.outcome, summary.code) == ("FILE_REFUSED", code)
    ack = answer(box, "bad.ack.xml")
    assert (ack["status"], ack["code"]) == ("FILE_REFUSED", code) and ack["message"]
    assert not (box.settings.outbox / "bad.result.xml").exists()
    assert declarations_stored(box) == 0 and list(box.settings.inbox.iterdir()) == []
    gen.put(box.settings.inbox, "good", good)
    (after,) = process_inbox_once(box)
    assert after.outcome == "DONE" and declarations_stored(box) == 2


def test_a_gzip_bomb_stops_at_the_limit(box):
    small = App(dataclasses.replace(box.settings, max_batch_bytes=100_000))
    small.__dict__["signer"] = box.signer
    gen.put(small.settings.inbox, "bomb", _bomb(), gz=True)
    (summary,) = process_inbox_once(small)
    small.close()
    assert (summary.outcome, summary.code) == ("FILE_REFUSED", "B007")


def test_a_batch_id_used_for_other_content_is_B005(box, signer):
    gen.put(box.settings.inbox, "one", gen.batch_bytes(batch_id="B-same", items=gen.dimona_items(signer, 1)))
    gen.put(box.settings.inbox, "two", gen.batch_bytes(batch_id="B-same", items=gen.dimona_items(signer, 1, prefix="x")))
    one, two = process_inbox_once(box)
    assert one.outcome == "DONE" and (two.outcome, two.code) == ("FILE_REFUSED", "B005")
    assert declarations_stored(box) == 1


def test_names_that_are_not_batch_names_are_never_opened(box, signer):
    inbox = box.settings.inbox
    data = gen.batch_bytes(batch_id="B-n", items=gen.dimona_items(signer, 1))
    for name in ("a..b", "back\\slash", "x" * 101):
        gen.put(inbox, name, data)
    gen.put(inbox, "waiting", data).with_suffix(".go")
    (inbox / "waiting.go").unlink()  # an upload in progress: no .go yet
    (inbox / "nodata.go").write_text("0" * 64)  # a .go before its file: waits
    summaries = process_inbox_once(box)
    assert sorted(s.outcome for s in summaries) == ["BAD_NAME"] * 3
    assert declarations_stored(box) == 0 and not box.settings.outbox.exists()
    assert (inbox / "waiting.xml").exists() and (inbox / "nodata.go").exists()
    assert (inbox / "a..b.go.refused").exists()
    assert process_inbox_once(box) == []  # reported once


def test_a_file_another_live_process_works_on_is_left_alone(box, signer):
    """batches.held_elsewhere: while another live process holds an unfinished batch of that name (it is
    working on this very file), an inbox pass does not copy and hash the file again to find out; once that
    claim is over (its lease ran out), the file is taken."""
    import os
    import socket
    import time

    from sqlalchemy import insert, update

    data = gen.batch_bytes(batch_id="held-1", items=gen.dimona_items(signer, 2))
    gen.put(box.settings.inbox, "held", data)
    other = f"{socket.gethostname()}:{os.getpid()}:another-watcher"  # alive: this very process
    with box.engine.begin() as c:
        c.execute(insert(t.batch).values(file_sha256="0" * 64, file_name="held.xml", status="CLAIMED", owner=other,
                                         lease_until=time.time() + 600, items_done=0))
    (summary,) = process_inbox_once(box)
    assert summary.outcome == "BUSY"
    assert not box.settings.archive.exists() or list(box.settings.archive.iterdir()) == []  # not even copied
    assert declarations_stored(box) == 0
    with box.engine.begin() as c:
        c.execute(update(t.batch).where(t.batch.c.owner == other).values(lease_until=time.time() - 1))
    (summary,) = process_inbox_once(box)
    assert summary.outcome == "DONE" and declarations_stored(box) == 2
