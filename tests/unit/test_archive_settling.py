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


def test_a_copy_that_cannot_be_made_durable_is_never_named(tmp_path: Path):
    aside, final = tmp_path / ".upload.1.ab.tmp.xml", tmp_path / "f00d.xml"  # aside never written
    settling = _Settling(aside, final)
    with pytest.raises(FileNotFoundError):
        settling.wait()
    assert not final.exists()
    settling.join()  # on the way out: logged, not raised
