"""The batch's archived copy is made durable and named in the background (batch._Settling): readable under its
aside name until wait(), then only under its SHA-256 name; an existing archived copy is never replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from declarations.services.batch import _Settling


def test_the_copy_gets_its_final_name_and_stays_readable_until_then(tmp_path: Path):
    aside, final = tmp_path / ".upload.1.ab.tmp.xml", tmp_path / "f00d.xml"
    aside.write_bytes(b"<Batch/>")
    settling = _Settling(aside, final)
    with open(settling.path, "rb") as reading:  # the first pass reads the aside name
        settling._thread.join()
        assert settling.path.read_bytes() == b"<Batch/>"  # opened again (the careful way): still there
        assert reading.read() == b"<Batch/>"
    assert settling.wait() == final
    assert final.read_bytes() == b"<Batch/>"
    assert not aside.exists()
    assert settling.wait() == final  # twice: the same answer


def test_an_archived_copy_already_there_is_kept(tmp_path: Path):
    aside, final = tmp_path / ".upload.1.ab.tmp.xml", tmp_path / "f00d.xml"
    final.write_bytes(b"first")
    aside.write_bytes(b"second")
    assert _Settling(aside, final).wait() == final
    assert final.read_bytes() == b"first"
    assert list(tmp_path.iterdir()) == [final]


def test_a_copy_that_cannot_be_made_durable_is_never_named(tmp_path: Path, caplog):
    aside, final = tmp_path / ".upload.1.ab.tmp.xml", tmp_path / "f00d.xml"  # aside never written
    settling = _Settling(aside, final)
    with pytest.raises(FileNotFoundError):
        settling.wait()
    assert not final.exists()
    with caplog.at_level("ERROR", logger="declarations.batch"):
        settling.join()  # on the way out: logged, not raised
    assert "could not be settled" in caplog.text


def test_aside_copies_left_by_dead_processes_are_removed(tmp_path: Path):
    """batch._drop_stale_uploads, run before each copy: an aside copy of a dead process of this host, or
    older than a day, goes; a live process's, or a recent one of another host, stays."""
    import os
    import socket
    import subprocess
    import time

    from declarations.services.batch import _drop_stale_uploads

    host = socket.gethostname()
    gone = subprocess.Popen(["true"])  # a process of this host that has ended
    gone.wait()
    names = {
        "dead": f".upload.{host}.{gone.pid}.aaaa1111.bbbb2222.tmp.xml",
        "alive": f".upload.{host}.{os.getpid()}.aaaa1111.cccc3333.tmp.xml.gz",
        "elsewhere": ".upload.other.host.example.4242.aaaa1111.dddd4444.tmp.xml",
        "elsewhere-old": ".upload.other.host.example.4243.aaaa1111.eeee5555.tmp.xml",
        "not-ours": "f00d.xml",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"<Batch/>")
    old = time.time() - 2 * 24 * 3600
    os.utime(tmp_path / names["elsewhere-old"], (old, old))
    _drop_stale_uploads(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["alive"], names["elsewhere"], "f00d.xml"])


def test_waiting_for_a_slow_fsync_keeps_the_claim_alive(tmp_path: Path, monkeypatch):
    """The first pass waits for the archived copy before its ack: while a slow fsync runs (a large file on a
    busy disk), wait() calls the first pass's keep_alive every second, which extends the lease."""
    import os
    import threading

    from declarations.services import batch

    release = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(descriptor):
        release.wait(10)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(batch, "_SETTLING_BEAT_SECONDS", 0.01)
    aside, final = tmp_path / ".upload.1.ab.tmp.xml", tmp_path / "f00d.xml"
    aside.write_bytes(b"<Batch/>")
    settling = _Settling(aside, final)
    beats = []

    def keep_alive():
        beats.append(1)
        if len(beats) == 5:
            release.set()

    assert settling.wait(keep_alive) == final
    beaten = len(beats)
    assert beaten >= 5 and final.read_bytes() == b"<Batch/>"
    assert settling.wait(keep_alive) == final and len(beats) == beaten  # settled: no more beats


def test_a_lease_lost_while_waiting_is_raised(tmp_path: Path, monkeypatch):
    import os
    import threading

    from declarations.services import batch
    from declarations.services.batch_items import LeaseLost

    release = threading.Event()
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (release.wait(10), real_fsync(descriptor)))
    monkeypatch.setattr(batch, "_SETTLING_BEAT_SECONDS", 0.01)
    aside, final = tmp_path / ".upload.1.ab.tmp.xml", tmp_path / "f00d.xml"
    aside.write_bytes(b"<Batch/>")
    settling = _Settling(aside, final)

    def lost():
        raise LeaseLost()

    with pytest.raises(LeaseLost):
        settling.wait(lost)
    release.set()
    settling.join()  # the way out of the batch: settled all the same
    assert final.read_bytes() == b"<Batch/>"
