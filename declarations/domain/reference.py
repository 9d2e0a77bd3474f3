"""ReferenceData derived from stored DmfA data (declarations.md, Social risk).

Take the (at most 4) most recent quarters strictly before EventDate's
quarter in which a current accepted DmfA of this employer names the worker;
QuarterlyGrossRemun is the mean of their codes 001+002 pay, rounded half up;
the reference occupation is, in the most recent quarter, the one with the
latest OccupationStartingDate (ties: highest OccupationSequenceNbr).
"""

from __future__ import annotations

from typing import Sequence

from declarations.domain.model import ReferenceData
from declarations.domain.money import divide
from declarations.domain.ports import QuarterSnapshot

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
