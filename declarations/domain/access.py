"""May an institution consult data about a person, and for which days? (institutions.md)

Consult(INSS, DataType, From, To) is granted only when the institution has a
register entry for the person, in a capacity it is authorized in for that
data type, whose period overlaps the window; the data returned is cut to the
days where that holds. Refusals, in the order they are decided:
A001 no register entry for the person; A002 no authorization for this data
type in the capacities it holds the person in; A003 the window does not
overlap an authorized register period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from declarations.domain.directory import DirectoryAuthorization as Authorization  # the directory's own


@dataclass(frozen=True)
class RegisterEntry:
    institution_id: str
    inss: str
    capacity: str
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True)
class Window:
    start: dt.date
    end: dt.date

    def clip(self, start: dt.date, end: dt.date | None) -> "Window | None":
        lo, hi = max(self.start, start), min(self.end, end or self.end)
        return Window(lo, hi) if lo <= hi else None


@dataclass(frozen=True)
class Grant:
    """Granted: the days that may be returned, each with the capacity and authorization that allow it."""
    windows: tuple[tuple[Window, RegisterEntry, Authorization], ...]


@dataclass(frozen=True)
class Refusal:
    code: str      # A001 | A002 | A003
    message: str


def decide_consult(institution_id: str, inss: str, data_type: str, window: Window,
                   register: list[RegisterEntry], authorizations: list[Authorization]) -> Grant | Refusal:
    entries = [e for e in register if e.institution_id == institution_id and e.inss == inss]
    if not entries:
        return Refusal("A001", f"{institution_id} has no register entry for person {inss}")
    allowed = {a.capacity: a for a in authorizations
               if a.institution_id == institution_id and a.data_type == data_type}
    authorized = [e for e in entries if e.capacity in allowed]
    if not authorized:
        held = ", ".join(sorted({e.capacity for e in entries}))
        return Refusal("A002", f"{institution_id} holds person {inss} as {held}, with no authorization for "
                       f"{data_type} in that capacity")
    windows = []
    for entry in sorted(authorized, key=lambda e: (e.valid_from, e.capacity)):
        clipped = window.clip(entry.valid_from, entry.valid_to)
        if clipped is not None:
            windows.append((clipped, entry, allowed[entry.capacity]))
    if not windows:
        return Refusal("A003", f"the window {window.start} to {window.end} does not overlap a register period in "
                       f"which {institution_id} is authorized for {data_type}")
    return Grant(tuple(windows))


def may_register(institution_id: str, capacity: str, authorizations: list[Authorization]) -> bool:
    """A006 otherwise: an institution registers only in a capacity it holds an authorization for."""
    return any(a.institution_id == institution_id and a.capacity == capacity for a in authorizations)
