"""Dimona rules D001-D011 (declarations.md).

Where the contract names the actions a rule applies to, it is followed; a
rule that names none (D007, D009, D010) is applied to the period as it would
be after the declaration, so an Update cannot turn a valid flexi-job or
occasional period into one the In would have refused (docs/decisions.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Iterator

from declarations.domain.anomalies import Anomaly, anomaly
from declarations.domain.model import Dimona, DimonaCancel, DimonaIn, DimonaOut, DimonaUpdate
from declarations.domain.ports import StoredPeriod
from declarations.domain.rules import RuleContext

FLEXI_COMMISSIONS = frozenset({"118", "119", "201", "202", "302", "311", "312", "314"})
OCCASIONAL_COMMISSIONS = frozenset({"144", "145", "302"})
STUDENT_QUOTA_HOURS = 600


def overlaps(a_start: dt.date, a_end: dt.date | None, b_start: dt.date, b_end: dt.date | None) -> bool:
    """Closed intervals of days; an end of None is open."""
    return (b_end is None or a_start <= b_end) and (a_end is None or b_start <= a_end)


def check(dimona: Dimona, ctx: RuleContext) -> Iterator[Anomaly]:
    action = dimona.action
    if isinstance(action, DimonaIn):
        yield from _check_in(dimona, action, ctx)
    else:
        yield from _check_existing(dimona, action, ctx)


def _shape(period: StoredPeriod, where: str, ctx: RuleContext) -> Iterator[Anomaly]:
    """D001, D007, D009, D010: rules on the period's own fields."""
    if period.ending_date is not None and period.ending_date < period.starting_date:
        yield anomaly("D001", f"EndingDate {period.ending_date} is before StartingDate {period.starting_date}",
                      f"{where}/EndingDate")
    kind = period.worker_type
    if kind == "STU" and period.planned_hours is None:
        yield anomaly("D007", "a student needs PlannedHoursNbr", where)
    if kind in ("STU", "FLX", "EXT") and period.ending_date is None:
        label = {"STU": "a student", "FLX": "a flexi-job", "EXT": "an occasional worker"}[kind]
        yield anomaly("D007", f"{label} period needs an EndingDate", where)
    commission = period.joint_commission.split(".")[0]
    if kind == "FLX" and commission not in FLEXI_COMMISSIONS:
        yield anomaly("D009", f"a flexi-job is not allowed in joint commission {period.joint_commission}",
                      f"{where}/JointCommissionNbr")
    if kind == "EXT" and commission not in OCCASIONAL_COMMISSIONS:
        yield anomaly("D009", f"an occasional worker is not allowed in joint commission {period.joint_commission}",
                      f"{where}/JointCommissionNbr")
    if kind == "EXT" and period.ending_date is not None and period.ending_date >= period.starting_date:
        days = (period.ending_date - period.starting_date).days + 1
        if days > 2:
            yield anomaly("D010", f"an occasional worker period may last at most 2 calendar days, not {days}", where)


def _overlap(dimona: Dimona, period: StoredPeriod, where: str, ctx: RuleContext) -> Iterator[Anomaly]:
    """D002, against stored non-cancelled periods of the same employer, worker and joint commission."""
    if ctx.stored is None:
        return
    if period.ending_date is not None and period.ending_date < period.starting_date:
        return  # D001/D011 already: an inverted period overlaps nothing meaningful
    others = ctx.stored.periods_of(dimona.employer.noss, [period.inss]).get(period.inss, [])
    for other in others:
        if other.period_id == period.period_id or other.joint_commission != period.joint_commission:
            continue
        if overlaps(period.starting_date, period.ending_date, other.starting_date, other.ending_date):
            end = other.ending_date.isoformat() if other.ending_date else "open"
            yield anomaly("D002", f"the period overlaps period {other.period_id} "
                          f"({other.starting_date} to {end}) of the same employer, worker and joint commission", where)
            return


def _student_quota(period: StoredPeriod, where: str, ctx: RuleContext) -> Iterator[Anomaly]:
    """D008 (warning): accepted non-cancelled STU hours in the calendar year, this one included."""
    if ctx.stored is None or period.worker_type != "STU" or period.planned_hours is None:
        return
    year = period.starting_date.year
    total = ctx.stored.student_hours(period.inss, year, excluding_period=period.period_id or None) + period.planned_hours
    if total > STUDENT_QUOTA_HOURS:
        yield anomaly("D008", f"the student's planned hours in {year} add up to {total}, more than "
                      f"{STUDENT_QUOTA_HOURS}", f"{where}/PlannedHoursNbr")


def _check_in(dimona: Dimona, action: DimonaIn, ctx: RuleContext) -> Iterator[Anomaly]:
    where = dimona.location
    period = StoredPeriod(0, dimona.employer.noss, action.inss, action.starting_date, action.ending_date,
                          action.joint_commission, action.worker_type, action.planned_hours, False, 0)
    yield from _shape(period, where, ctx)
    if (action.starting_date - ctx.today).days > 365:
        yield anomaly("D006", f"StartingDate {action.starting_date} is more than 365 days after today ({ctx.today})",
                      f"{where}/StartingDate")
    if ctx.today > action.starting_date:
        yield anomaly("D005", f"the DimonaIn is late: it was due at the latest on {action.starting_date}, "
                      f"the first day of work", f"{where}/StartingDate")
    yield from _overlap(dimona, period, where, ctx)
    yield from _student_quota(period, where, ctx)


def _check_existing(dimona: Dimona, action, ctx: RuleContext) -> Iterator[Anomaly]:
    """Out, Update, Cancel: they all act on a stored period."""
    where = dimona.location
    if ctx.stored is None:
        return  # offline: the period is not known here
    period = ctx.stored.period(action.period_id)
    if period is None or period.employer != dimona.employer.noss:
        yield anomaly("D003", f"period {action.period_id} is unknown or belongs to another employer",
                      f"{where}/PeriodId")
        return
    if period.cancelled:
        yield anomaly("D004", f"period {action.period_id} is cancelled", f"{where}/PeriodId")
        return
    if isinstance(action, DimonaCancel):
        return
    if isinstance(action, DimonaOut):
        if action.ending_date < period.starting_date:
            yield anomaly("D011", f"EndingDate {action.ending_date} is before the period's StartingDate "
                          f"{period.starting_date}", f"{where}/EndingDate")
            return
        yield from _overlap(dimona, replace(period, ending_date=action.ending_date), where, ctx)
        return
    changed = apply_update(period, action)
    shape = list(_shape(changed, where, ctx))
    yield from shape
    yield from _overlap(dimona, changed, where, ctx)
    if action.planned_hours is not None or action.starting_date is not None:
        yield from _student_quota(changed, where, ctx)


def apply_update(period: StoredPeriod, action: DimonaUpdate) -> StoredPeriod:
    """The period as it would be after an Update: only the given fields change."""
    return replace(
        period,
        starting_date=action.starting_date or period.starting_date,
        ending_date=action.ending_date or period.ending_date,
        joint_commission=action.joint_commission or period.joint_commission,
        planned_hours=action.planned_hours if action.planned_hours is not None else period.planned_hours,
    )


def apply_out(period: StoredPeriod, action: DimonaOut) -> StoredPeriod:
    return replace(period, ending_date=action.ending_date)


def apply_cancel(period: StoredPeriod) -> StoredPeriod:
    return replace(period, cancelled=True)


def apply_change(period: StoredPeriod, action: DimonaOut | DimonaUpdate | DimonaCancel) -> StoredPeriod:
    """The period as an Out, Update or Cancel leaves it (what the store writes, what notifications report)."""
    if isinstance(action, DimonaOut):
        return apply_out(period, action)
    if isinstance(action, DimonaUpdate):
        return apply_update(period, action)
    return apply_cancel(period)
