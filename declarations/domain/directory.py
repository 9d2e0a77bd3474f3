"""The reference directory (institutions.md) as plain values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class DirectoryEmployer:
    noss: str
    enterprise_nbr: str
    name: str


@dataclass(frozen=True)
class DirectorySender:
    sender_id: str
    name: str
    noss: str | None
    fingerprints: tuple[str, ...]


@dataclass(frozen=True)
class DirectoryMandate:
    sender_id: str
    noss: str
    kinds: tuple[str, ...]
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True)
class DirectoryInstitution:
    institution_id: str
    name: str
    sector: str
    fingerprints: tuple[str, ...]


@dataclass(frozen=True)
class DirectoryAuthorization:
    institution_id: str
    capacity: str
    data_type: str


@dataclass(frozen=True)
class Directory:
    employers: tuple[DirectoryEmployer, ...] = ()
    senders: tuple[DirectorySender, ...] = ()
    mandates: tuple[DirectoryMandate, ...] = ()
    institutions: tuple[DirectoryInstitution, ...] = ()
    authorizations: tuple[DirectoryAuthorization, ...] = ()

    def problems(self) -> list[str]:
        """Coherence the XSD cannot express; any problem refuses the whole load."""
        out: list[str] = []
        nosses = [e.noss for e in self.employers]
        senders = [s.sender_id for s in self.senders]
        institutions = [i.institution_id for i in self.institutions]
        for label, values in (("employer", nosses), ("sender", senders), ("institution", institutions)):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                out.append(f"{label} listed twice: {', '.join(duplicates)}")
        for s in self.senders:
            if s.noss is not None and s.noss not in nosses:
                out.append(f"sender {s.sender_id} is employer {s.noss}, which the directory does not list")
        for m in self.mandates:
            if m.sender_id not in senders:
                out.append(f"mandate for unknown sender {m.sender_id}")
            if m.noss not in nosses:
                out.append(f"mandate of sender {m.sender_id} for unknown employer {m.noss}")
            if m.valid_to is not None and m.valid_to < m.valid_from:
                out.append(f"mandate of sender {m.sender_id} for employer {m.noss} ends before it starts")
        for a in self.authorizations:
            if a.institution_id not in institutions:
                out.append(f"authorization for unknown institution {a.institution_id}")
        return out
