"""The first pass's spool: each declaration's bytes, written once, for the second pass and the workers.

The first pass over a batch file reads it whole anyway (B002: well-formed to the end) and has each
declaration's bytes in hand (batch_scan.py); the spool keeps them (each one's length in 8 bytes, then the
bytes) so that the file is read once. During the quick first pass the workers read runs of it already
(``SpooledRun``) to check each declaration's well-formedness. It lives beside the archive (the disk that
took the file takes its declarations too), under a name of its owner's:
``.<sha256>.<host>.<pid>.<token>.spool``, created exclusively, so that two processes taking turns on one
file (a lease run out, one host or several sharing the folder) never write or remove each other's.

The spool is only a shortcut: when it cannot be written (a full disk, an I/O error), the batch goes on and
its second pass parses the archived file again, as a resumed batch does.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger("declarations.batch")

# A spool of a dead owner on another host cannot be told from a live one by its process; none lives this long
# (a spool serves one batch: hours at most).
STALE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Spooled:
    """Where a declaration's bytes are in a spool. A worker process gets this and reads the bytes itself:
    pickling 850 KB through the pool's pipe cost ~1.3 ms of CPU per such DmfA, on the two sides together."""
    path: str
    offset: int
    length: int

    def read(self) -> bytes:
        with open(self.path, "rb") as stream:
            data = os.pread(stream.fileno(), self.length, self.offset)
        if len(data) != self.length:
            raise OSError(f"{self.path} ends before the declaration at byte {self.offset}")
        return data


@dataclass(frozen=True)
class SpooledRun:
    """Several declarations one after the other in a spool, each with its length in front (as written)."""
    path: str
    offset: int
    length: int

    def pieces(self) -> Iterator[bytes]:
        data = Spooled(self.path, self.offset, self.length).read()
        position = 0
        while position < len(data):
            length = int.from_bytes(data[position:position + 8], "big")
            position += 8
            if position + length > len(data):
                raise OSError(f"{self.path}: a declaration runs past the end of the run at byte {self.offset}")
            yield data[position:position + length]
            position += length


class Spool:
    def __init__(self, folder: Path, sha: str, owner: str):
        host, pid, token = owner.rsplit(":", 2)
        self.path = folder / f".{sha}.{host}.{pid}.{token}.spool"
        self._out = None
        self.complete = False
        self.written = 0  # bytes written so far: where the next declaration's length goes

    # -- writing (the first pass) --------------------------------------------------------------------------

    def open(self) -> None:
        self.written = 0
        try:
            self._out = open(self.path, "xb")
        except OSError as error:
            self._give_up(error)

    def add(self, data: bytes) -> None:
        if self._out is None:
            return
        try:
            self._out.write(len(data).to_bytes(8, "big"))
            self._out.write(data)
            self.written += 8 + len(data)
        except OSError as error:
            self._give_up(error)

    @property
    def writing(self) -> bool:
        """Open, and has not given up."""
        return self._out is not None

    def flush(self) -> None:
        """What was added is in the file (for a worker process to read it during the first pass)."""
        if self._out is None:
            return
        try:
            self._out.flush()
        except OSError as error:
            self._give_up(error)

    def close(self) -> None:
        """The first pass read the whole file: the spool holds every declaration (unless it gave up)."""
        if self._out is None:
            return
        try:
            self._out.close()
            self.complete = True
        except OSError as error:
            self._give_up(error)
        self._out = None

    def _give_up(self, error: OSError) -> None:
        log.warning("batch spool %s not written (%s): the second pass reads the archived file again",
                    self.path, error)
        if self._out is not None:
            try:
                self._out.close()
            except OSError:
                pass
            self._out = None
        self.remove()

    # -- reading (the second pass) -----------------------------------------------------------------------

    def entries(self) -> Iterator[Spooled]:
        """Where each declaration is, in file order. A spool cut short (it never should be: it is this
        process's own file) raises rather than ending early: a batch must never be finished with items
        missing."""
        with open(self.path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            while head := stream.read(8):
                length = int.from_bytes(head, "big")
                offset = stream.tell()
                if len(head) != 8 or offset + length > size:
                    raise OSError(f"{self.path} is cut short at byte {offset - len(head)}")
                yield Spooled(str(self.path), offset, length)
                stream.seek(length, os.SEEK_CUR)

    def remove(self) -> None:
        self.complete = False
        if self._out is not None:  # a first pass that stopped half-way (a refusal, a lost lease)
            try:
                self._out.close()
            except OSError:
                pass
            self._out = None
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass

    @staticmethod
    def drop_stale(folder: Path, sha: str, owner_is_gone: Callable[[str], bool]) -> None:
        """Remove the spools of ``sha``'s earlier owners that are gone: a dead process of this host, or
        any spool older than a day."""
        for stale in folder.glob(f".{sha}.*.spool"):
            remove_if_stale(stale, stale.name[len(sha) + 2:-len(".spool")], owner_is_gone)


def remove_if_stale(path: Path, owner: str, owner_is_gone: Callable[[str], bool]) -> None:
    """Remove ``path``, a file left beside the archive by ``owner`` (its host, pid and token, joined by dots
    in the file's name), if that owner is gone (a dead process of this host) or the file is older than a
    day. Also for the batch's aside copies of the uploads (batch.py)."""
    host_pid_token = owner.rsplit(".", 2)
    try:
        old = time.time() - path.stat().st_mtime > STALE_SECONDS
    except OSError:
        return
    if old or (len(host_pid_token) == 3 and owner_is_gone(":".join(host_pid_token))):
        path.unlink(missing_ok=True)
