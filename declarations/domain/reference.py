"""ReferenceData derived from stored DmfA data (declarations.md, Social risk).

Take the (at most 4) most recent quarters strictly before EventDate's
quarter in which a current accepted DmfA of this employer names the worker;
QuarterlyGrossRemun is the mean of their codes 001+002 pay, rounded half up;
the reference occupation is, in the most recent quarter, the one with the
latest OccupationStartingDate (ties: highest OccupationSequenceNbr).
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from declarations.domain.model import Quarter, ReferenceData
from declarations.domain.money import divide
from declarations.domain.ports import QuarterSnapshot, StoredData

QUARTERS_TAKEN = 4


def derive(history: Sequence[QuarterSnapshot]) -> ReferenceData | None:
    """``history`` most recent first; None when there is nothing to derive from."""
    quarters = sorted(history, key=lambda q: q.quarter.code, reverse=True)[:QUARTERS_TAKEN]
    if not quarters:
        return None
    gross = divide(sum(q.remun_001_002 for q in quarters), len(quarters))
    latest = quarters[0]
    if not latest.occupations:
        return None
    occupation = max(latest.occupations, key=lambda o: (o.starting_date, o.sequence))
    fraction = occupation.mean_working_hours * 10000 // occupation.ref_mean_working_hours
    return ReferenceData(gross, fraction, occupation.joint_commission)


def reference_for(stored: StoredData, employer: str, inss: str, event_date: dt.date) -> ReferenceData | None:
    """What the engine derives for this employer, worker and EventDate (the rule and Prefill)."""
    return derive(stored.dmfa_history(employer, inss, Quarter.of(event_date), QUARTERS_TAKEN))
