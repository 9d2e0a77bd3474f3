"""The first pass's spool (services/batch_spool.py): read back whole or not at all, named after its owner, and
only a gone owner's removed by the next."""

from __future__ import annotations

import os
import resource
import signal
import socket

import pytest

from declarations.services.batch_spool import Spool

SHA = "ab" * 32
ME = f"{socket.gethostname()}:{os.getpid()}:0123abcd"


def written(folder, owner=ME, items=(b"<first/>", b"<second/>")) -> Spool:
    spool = Spool(folder, SHA, owner)
    spool.open()
    for data in items:
        spool.add(data)
    spool.close()
    return spool


def test_the_declarations_come_back_in_file_order(tmp_path):
    spool = written(tmp_path)
    assert spool.complete
    assert [entry.read() for entry in spool.entries()] == [b"<first/>", b"<second/>"]


def test_a_spool_cut_short_raises_instead_of_ending_early(tmp_path):
    spool = written(tmp_path)
    with open(spool.path, "r+b") as stream:
        stream.truncate(os.path.getsize(spool.path) - 3)
    with pytest.raises(OSError, match="cut short"):
        list(spool.entries())


def test_two_owners_of_one_file_never_share_a_spool(tmp_path):
    mine, theirs = written(tmp_path), written(tmp_path, owner=f"other-host:{os.getpid()}:9999ffff")
    assert mine.path != theirs.path
    mine.remove()
    assert theirs.path.exists() and [e.read() for e in theirs.entries()] == [b"<first/>", b"<second/>"]


def test_only_the_spools_of_gone_owners_are_dropped(tmp_path):
    alive, dead, elsewhere = (written(tmp_path, owner=o) for o in (
        ME, f"{socket.gethostname()}:999999:dddd0000", "some.other.host:1:eeee1111"))
    Spool.drop_stale(tmp_path, SHA, owner_is_gone=lambda owner: owner.split(":")[1] == "999999")
    assert alive.path.exists() and not dead.path.exists() and elsewhere.path.exists()
    old = elsewhere.path.stat().st_mtime - 2 * 24 * 3600
    os.utime(elsewhere.path, (old, old))  # a day old: its owner is gone, wherever it ran
    Spool.drop_stale(tmp_path, SHA, owner_is_gone=lambda owner: False)
    assert alive.path.exists() and not elsewhere.path.exists()


def test_a_spool_that_cannot_be_created_is_given_up(tmp_path):
    spool = written(tmp_path / "no-such-folder")
    assert not spool.complete  # the second pass reads the archived file again


def test_a_spool_that_fails_half_way_is_given_up_and_removed(tmp_path):
    """A real write failure (EFBIG: the process's file size limit, as a full disk would fail it)."""
    previous_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, do not kill the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, previous_limit[1]))
    try:
        spool = written(tmp_path, items=(b"<first/>", b"<second>" + b"x" * 200 + b"</second>", b"<third/>"))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous_limit)
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert not spool.complete and not spool.path.exists()
