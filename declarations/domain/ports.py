"""What the rules may ask of stored data and of the directory.

The domain declares these protocols; the store implements them. A rule that
needs stored data receives ``None`` when there is none (the offline
``validate``) and then checks nothing that needs it. Every query already
applies the reader's scope: a PROD declaration sees PROD data; a TEST one
sees PROD data plus its own sender's TEST data (declarations.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from declarations.domain.model import Quarter


@dataclass(frozen=True)
class StoredPeriod:
    period_id: int
    employer: str
    inss: str
    starting_date: dt.date
    ending_date: dt.date | None
    joint_commission: str
    worker_type: str
    planned_hours: int | None
    cancelled: bool
    version: int


@dataclass(frozen=True)
class OccupationSnapshot:
    starting_date: dt.date
    sequence: int
    mean_working_hours: int
    ref_mean_working_hours: int
    joint_commission: str


@dataclass(frozen=True)
class QuarterSnapshot:
    """One worker in one current accepted DmfA of one employer (ReferenceData)."""
    quarter: Quarter
    remun_001_002: int
    occupations: tuple[OccupationSnapshot, ...]


class StoredData(Protocol):
    # Dimona
    def period(self, period_id: int) -> StoredPeriod | None: ...
    def periods_of(self, employer: str, inss_list: Iterable[str]) -> dict[str, list[StoredPeriod]]:
        """Non-cancelled periods of these workers with this employer."""
    def uncovered(self, employer: str, spans: Sequence[tuple[str, dt.date, dt.date]]) -> set[int]:
        """The positions in ``spans`` of the (INSS, first day, last day) that no non-cancelled period of this
        employer for that worker overlaps: ``uncovered_by_periods``, or one query where the store has one."""
    def student_hours(self, inss: str, year: int, *, excluding_period: int | None) -> int:
        """PlannedHoursNbr of non-cancelled STU periods (all employers) starting in ``year``."""
    # DmfA
    def current_dmfa(self, employer: str, quarter: Quarter) -> int | None: ...
    # Social risk
    def social_risk_exists(self, scenario: str, employer: str, inss: str, same_event_key: str) -> bool: ...
    def dmfa_history(self, employer: str, inss: str, before: Quarter, limit: int = 4) -> list[QuarterSnapshot]:
        """Most recent first: quarters before ``before`` with a current DmfA of this employer naming the worker."""


def uncovered_by_periods(stored: StoredData, employer: str,
                         spans: Sequence[tuple[str, dt.date, dt.date]]) -> set[int]:
    """``StoredData.uncovered`` from ``periods_of``: the span (start, end) is covered by a period that starts
    on or before ``end`` and ends on or after ``start`` (or never)."""
    if not spans:
        return set()
    periods = stored.periods_of(employer, {inss for inss, _start, _end in spans})
    found = set()
    for n, (inss, start, end) in enumerate(spans):
        for p in periods.get(inss, ()):  # a plain loop: a generator per span cost more (1,000 per DmfA)
            if (p.ending_date is None or start <= p.ending_date) and p.starting_date <= end:
                break
        else:
            found.add(n)
    return found


@dataclass(frozen=True)
class Mandate:
    sender_id: str
    noss: str
    kinds: frozenset[str]
    valid_from: dt.date
    valid_to: dt.date | None

    def covers(self, kind: str, day: dt.date) -> bool:
        return kind in self.kinds and self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


class DirectoryView(Protocol):
    def registered_enterprise_nbr(self, noss: str) -> str | None | bool:
        """The EnterpriseNbr registered for this employer; False when the employer is not in the directory."""
    def sender_fingerprints(self, sender_id: str) -> frozenset[str]: ...
    def sender_employer(self, sender_id: str) -> str | None:
        """The NOSS number of the employer this sender is, if it is one."""
    def mandates(self, sender_id: str, noss: str) -> list[Mandate]: ...
