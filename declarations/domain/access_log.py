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


def chain_hash(entry: LogEntry) -> str:
    return hashlib.sha256(entry.content()).hexdigest()


def sealed(entry: LogEntry) -> LogEntry:
    from dataclasses import replace
    return replace(entry, hash=chain_hash(entry))


def first_broken(entries: Iterable[LogEntry]) -> int | None:
    """The sequence number of the first entry that breaks the chain, or None if it is intact."""
    previous, expected_sequence = GENESIS, None
    for entry in entries:
        if expected_sequence is not None and entry.sequence != expected_sequence:
            return expected_sequence  # an entry is missing
        if entry.previous_hash != previous or entry.hash != chain_hash(entry):
            return entry.sequence
        previous, expected_sequence = entry.hash, entry.sequence + 1
    return None
