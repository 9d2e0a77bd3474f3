"""DmfA rules M001-M013 (declarations.md)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Iterator

from declarations.domain.anomalies import Anomaly, anomaly
from declarations.domain.model import DmfA, Occupation, Quarter, WorkerRecord
from declarations.domain.money import times_rate
from declarations.domain.rules import RuleContext
from declarations.domain.rules.dimona import overlaps

# ContributionCode -> rate in hundredths of a percent
CONTRIBUTION_RATES = {"001": 1307, "002": 2500, "003": 813, "004": 2800}
ALLOWED_CONTRIBUTIONS = {"015": {"001", "002"}, "495": {"001", "002"}, "840": {"003"}, "050": {"004"}}
MANUAL_WORKER = "015"
MANUAL_BASE_PER_CENT = 108     # manual workers pay on 108 % of their pay
BASE_REMUN_CODES = ("001", "002", "003")


def days_in_quarter(occupation: Occupation, quarter: Quarter) -> tuple[dt.date, dt.date] | None:
    """The occupation's days inside the quarter, or None when it has none."""
    return _days_within(occupation, quarter.first_day, quarter.last_day)


def _days_within(occupation: Occupation, first: dt.date, last: dt.date) -> tuple[dt.date, dt.date] | None:
    # The quarter's bounds computed once per DmfA, not per occupation (Quarter computes them each time).
    start = max(occupation.starting_date, first)
    end = min(occupation.ending_date or last, last)
    return (start, end) if start <= end else None


def check(dmfa: DmfA, ctx: RuleContext) -> Iterator[Anomaly]:
    yield from _declaration(dmfa, ctx)
    yield from _duplicates(dmfa)
    bounds = (dmfa.quarter.first_day, dmfa.quarter.last_day)
    for person in dmfa.persons:
        for record in person.worker_records:
            for occupation in record.occupations:
                yield from _occupation(occupation, dmfa.quarter, bounds)
            yield from _contributions(record)
    yield from _net_owed(dmfa)
    yield from _dimona_coverage(dmfa, ctx)


def _declaration(dmfa: DmfA, ctx: RuleContext) -> Iterator[Anomaly]:
    today_quarter = Quarter.of(ctx.today)
    if dmfa.quarter.code >= today_quarter.code:
        yield anomaly("M001", f"quarter {dmfa.quarter} is not over yet: a quarter is declared after it ends",
                      "/DmfA/Quarter")
    if dmfa.declaration_type == "ORIGINAL" and dmfa.replaces is not None:
        yield anomaly("M003", "an ORIGINAL declaration cannot name a ReplacesDeclarationId",
                      "/DmfA/ReplacesDeclarationId")
    if dmfa.declaration_type == "REPLACEMENT" and dmfa.replaces is None:
        yield anomaly("M003", "a REPLACEMENT must name the declaration it replaces (ReplacesDeclarationId)",
                      "/DmfA/DeclarationType")
    if ctx.stored is None:
        return
    current = ctx.stored.current_dmfa(dmfa.employer.noss, dmfa.quarter)
    if dmfa.declaration_type == "ORIGINAL" and current is not None:
        yield anomaly("M002", f"declaration {current} is already the current DmfA of employer "
                      f"{dmfa.employer.noss} for quarter {dmfa.quarter}: send a REPLACEMENT", "/DmfA/DeclarationType")
    if dmfa.declaration_type == "REPLACEMENT" and dmfa.replaces is not None and dmfa.replaces != current:
        what = f"the current one is {current}" if current is not None else "there is none"
        yield anomaly("M003", f"declaration {dmfa.replaces} is not the current DmfA of employer {dmfa.employer.noss} "
                      f"for quarter {dmfa.quarter} ({what})", "/DmfA/ReplacesDeclarationId")


def _duplicates(dmfa: DmfA) -> Iterator[Anomaly]:
    seen_seq: set[int] = set()
    seen_inss: set[str] = set()
    for person in dmfa.persons:
        if person.sequence in seen_seq:
            yield anomaly("M011", f"NaturalPersonSequenceNbr {person.sequence} occurs twice",
                          f"{person.location}/NaturalPersonSequenceNbr")
        if person.inss in seen_inss:
            yield anomaly("M011", f"INSS {person.inss} occurs in two NaturalPersons", f"{person.location}/INSS")
        seen_seq.add(person.sequence)
        seen_inss.add(person.inss)
        for record in person.worker_records:
            counts = Counter(o.sequence for o in record.occupations)
            reported: set[int] = set()
            for occupation in record.occupations:
                if counts[occupation.sequence] > 1 and occupation.sequence in reported:
                    yield anomaly("M011", f"OccupationSequenceNbr {occupation.sequence} occurs twice in one "
                                  "WorkerRecord", f"{occupation.location}/OccupationSequenceNbr")
                reported.add(occupation.sequence)


def _occupation(occupation: Occupation, quarter: Quarter, bounds: tuple[dt.date, dt.date]) -> Iterator[Anomaly]:
    where = occupation.location
    first, last = bounds
    if occupation.ending_date is not None and occupation.ending_date < occupation.starting_date:
        yield anomaly("M005", f"OccupationEndingDate {occupation.ending_date} is before OccupationStartingDate "
                      f"{occupation.starting_date}", f"{where}/OccupationEndingDate")
    elif not overlaps(occupation.starting_date, occupation.ending_date, first, last):
        yield anomaly("M004", f"the occupation does not overlap quarter {quarter} "
                      f"({first} to {last})", f"{where}/OccupationStartingDate")
    if occupation.mean_working_hours > occupation.ref_mean_working_hours:
        yield anomaly("M006", f"MeanWorkingHours {occupation.mean_working_hours} is greater than RefMeanWorkingHours "
                      f"{occupation.ref_mean_working_hours}", f"{where}/MeanWorkingHours")
    days = _days_within(occupation, first, last)
    if days is not None and occupation.services:
        calendar_days = (days[1] - days[0]).days + 1
        allowed = -(-calendar_days * occupation.working_days_system // 7)  # ceil, in hundredths of days
        declared = sum(s.days for s in occupation.services)
        if declared > allowed:
            yield anomaly("M007", f"the services add up to {declared} hundredths of days, more than the {allowed} "
                          f"that {calendar_days} calendar days in a {occupation.working_days_system / 100:g}-day "
                          f"week allow", f"{where}/Service[1]/ServiceNbrDays")


def _contributions(record: WorkerRecord) -> Iterator[Anomaly]:
    allowed = ALLOWED_CONTRIBUTIONS.get(record.worker_code, set())
    remun = sum(r.amount for o in record.occupations for r in o.remuns if r.code in BASE_REMUN_CODES)
    expected_base = times_rate(remun, MANUAL_BASE_PER_CENT * 100) if record.worker_code == MANUAL_WORKER else remun
    for contribution in record.contributions:
        where = contribution.location
        if contribution.code not in allowed:
            yield anomaly("M013", f"ContributionCode {contribution.code} is not allowed for WorkerCode "
                          f"{record.worker_code}", f"{where}/ContributionCode")
        expected = times_rate(contribution.base, CONTRIBUTION_RATES[contribution.code])
        if contribution.amount != expected:
            rate = CONTRIBUTION_RATES[contribution.code] / 100
            yield anomaly("M009", f"Amount {contribution.amount} is not Base {contribution.base} times {rate:g} % "
                          f"({expected})", f"{where}/Amount")
        if contribution.code in ("001", "002") and contribution.base != expected_base:
            how = "108 % of " if record.worker_code == MANUAL_WORKER else ""
            yield anomaly("M012", f"Base {contribution.base} is not {how}the worker record's pay of codes 001, 002 "
                          f"and 003 ({expected_base})", f"{where}/Base")


def _net_owed(dmfa: DmfA) -> Iterator[Anomaly]:
    total = sum(c.amount for p in dmfa.persons for w in p.worker_records for c in w.contributions)
    if dmfa.net_owed_amount != total:
        yield anomaly("M008", f"NetOwedAmount {dmfa.net_owed_amount} is not the sum of the contributions ({total})",
                      "/DmfA/NetOwedAmount")


def _dimona_coverage(dmfa: DmfA, ctx: RuleContext) -> Iterator[Anomaly]:
    """M010 (warning): every occupation's days in the quarter are covered by some Dimona period."""
    if ctx.stored is None:
        return
    periods = ctx.stored.periods_of(dmfa.employer.noss, {p.inss for p in dmfa.persons})
    first, last = dmfa.quarter.first_day, dmfa.quarter.last_day
    for person in dmfa.persons:
        mine = periods.get(person.inss, [])
        for record in person.worker_records:
            for occupation in record.occupations:
                days = _days_within(occupation, first, last)
                if days is None:
                    continue
                if not any(overlaps(days[0], days[1], p.starting_date, p.ending_date) for p in mine):
                    yield anomaly("M010", f"no Dimona period of this employer for worker {person.inss} covers the "
                                  f"occupation's days from {days[0]} to {days[1]}", occupation.location)
