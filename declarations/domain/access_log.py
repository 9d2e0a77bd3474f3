"""The tamper-evident access log (institutions.md): each entry holds the hash
of the one before, so changing, removing or inserting an entry breaks the
chain from there on, and a check names the first entry that breaks it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Iterable

GENESIS = "0" * 64


@dataclass(frozen=True)
class LogEntry:
    sequence: int
    at: str                    # ISO 8601 with zone
    institution_id: str
    operation: str             # CONSULT | GET_NOTIFICATIONS | REGISTER | UNREGISTER | SUBSCRIBE | ...
    inss: str | None
    data_type: str | None
    window: str | None         # "FROM/TO"
    outcome: str               # GRANTED or the A code
    authorization: str | None  # "CAPACITY:DATA_TYPE" used
    message_id: str | None
    previous_hash: str
    hash: str = ""
    detail: str | None = None  # what else identifies the access, e.g. the Sequences a GetNotifications delivered

    def content(self) -> bytes:
        """What the hash covers: every field but the hash, in a canonical JSON form."""
        fields = asdict(self)
        fields.pop("hash")
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def content_around_chain(entry: LogEntry) -> tuple[str, str, str]:
    """The hashed content as three texts to put the previous hash and the sequence between:
    ``a + previous_hash + b + str(sequence) + c`` is ``entry.content()`` for that hash and sequence.

    So a store can seal an entry in the same statement that takes the chain's lock (it knows the
    previous hash and the sequence only then). The JSON keys are sorted, so previous_hash, sequence
    and window are adjacent; quotes inside string values are escaped, so the pattern below can only
    be the keys themselves."""
    from dataclasses import replace

    marker = "@previous@"
    text = replace(entry, previous_hash=marker, sequence=0).content().decode()
    joint = f'"previous_hash":"{marker}","sequence":0,"window":'
    at = text.index(joint)
    return (text[:at] + '"previous_hash":"', '","sequence":', ',"window":' + text[at + len(joint):])


def chain_hash(entry: LogEntry) -> str:
    return hashlib.sha256(entry.content()).hexdigest()


def sealed(entry: LogEntry) -> LogEntry:
    from dataclasses import replace
    return replace(entry, hash=chain_hash(entry))


@dataclass(frozen=True)
class ChainCheck:
    entries: int               # how many entries were read up to the first broken one (all of them if intact)
    last_hash: str             # the hash of the last intact entry (GENESIS if none)
    first_broken: int | None   # the sequence of the first entry that breaks the chain; None: intact
    reason: str = ""


def check_chain(entries: Iterable[LogEntry]) -> ChainCheck:
    """Walk the chain from the first entry (sequence 1) and stop at the first that breaks it."""
    previous, expected, count = GENESIS, 1, 0
    for entry in entries:
        if entry.sequence != expected:
            return ChainCheck(count, previous, expected, f"entry {expected} is missing")
        if entry.previous_hash != previous:
            return ChainCheck(count, previous, entry.sequence, "its previous_hash is not the hash of the entry before")
        if entry.hash != chain_hash(entry):
            return ChainCheck(count, previous, entry.sequence, "its content does not match its hash")
        previous, expected, count = entry.hash, expected + 1, count + 1
    return ChainCheck(count, previous, None)


def first_broken(entries: Iterable[LogEntry]) -> int | None:
    """The sequence number of the first entry that breaks the chain, or None if it is intact."""
    return check_chain(entries).first_broken
