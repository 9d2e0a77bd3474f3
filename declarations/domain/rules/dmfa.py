"""DmfA rules M001-M013 (declarations.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

from declarations.domain.anomalies import Anomaly, anomaly
from declarations.domain.model import DmfA, Occupation, Quarter, WorkerRecord
from declarations.domain.money import times_rate
from declarations.domain.ports import StoredData
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


@dataclass(frozen=True)
class PreparedDmfA:
    """What the rules find in the DmfA alone, before anything stored is read (``prepare``).

    Everything but M002, the second half of M003 and M010 needs only the declaration and the reception day.
    ``Ingest.submit`` prepares it before the declaration's transaction: a batch's transactions run one
    after the other (services/batch_items.py), and these rules were ~1.5 ms of CPU in the turn of a DmfA of
    1,000 workers. ``check`` yields them around what it reads, in the order they always came in.
    """
    dmfa: DmfA                      # the DmfA prepared (``check`` takes no other)
    today: dt.date                  # the reception day it was prepared for (M001)
    head: tuple[Anomaly, ...]       # M001, M003 (ReplacesDeclarationId given on an ORIGINAL, or missing)
    body: tuple[Anomaly, ...]       # M011, each worker's M004-M007, M009, M012, M013, then M008
    # M010: (INSS, location, start, end) of each occupation with days in the quarter (from start to end),
    # in the DmfA's order.
    occupations: tuple[tuple[str, str, dt.date, dt.date], ...]
    # The same without the location: what M010 asks the store (``StoredData.uncovered``), in one query.
    spans: tuple[tuple[str, dt.date, dt.date], ...]


def check(dmfa: DmfA, ctx: RuleContext, prepared: PreparedDmfA | None = None) -> Iterator[Anomaly]:
    """M001-M013, in this order: the declaration (M001, M003, then M002 and M003 against the current DmfA),
    the duplicates (M011), then each worker's occupations (M004-M007) and contributions (M009, M012, M013),
    NetOwedAmount (M008), and last the Dimona coverage (M010).

    ``prepared``: ``prepare(dmfa, ctx.today)``, done beforehand (outside the transaction); without it,
    ``check`` prepares it first. Only the current DmfA and the workers' Dimona periods are read here, in
    that order (as before), and only when there is stored data (not offline).
    """
    if prepared is None:
        prepared = prepare(dmfa, ctx.today)
    elif prepared.dmfa is not dmfa or prepared.today != ctx.today:
        raise ValueError("prepared for another DmfA or another day")
    yield from prepared.head
    stored = ctx.stored
    if stored is None:  # offline: neither M002, M003's current DmfA nor M010
        yield from prepared.body
        return
    yield from _current(dmfa, stored)
    yield from prepared.body
    # M010: the store answers which occupations no period covers, in one query (not 1,000 periods read back
    # to be compared here).
    uncovered = stored.uncovered(dmfa.employer.noss, prepared.spans)
    if not uncovered:
        return
    for n, (inss, location, start, end) in enumerate(prepared.occupations):
        if n in uncovered:
            yield anomaly("M010", f"no Dimona period of this employer for worker {inss} covers the "
                          f"occupation's days from {start} to {end}", location)


def prepare(dmfa: DmfA, today: dt.date) -> PreparedDmfA:
    """The anomalies that need nothing stored, and what M010 will check against the Dimona periods.

    One pass over the workers does the occupations, the contributions, the total for M008 and M010's days
    (a DmfA of 1,000 workers is ~1,000 occupations, each checked for up to five rules: a generator per
    occupation and per worker record, and the quarter's bounds computed for each, were most of the rules'
    cost). The anomalies are kept apart per rule group and yielded in the order the separate passes gave
    them.
    """
    head = tuple(_form(dmfa, today))
    found = list(_duplicates(dmfa))  # then M004-M007, M009, M012, M013, worker by worker
    quarter = dmfa.quarter
    first, last = quarter.first_day, quarter.last_day
    with_days: list[tuple[str, str, dt.date, dt.date]] = []  # for M010
    total = 0                                                 # of all contributions (M008)
    for person in dmfa.persons:
        inss = person.inss
        for record in person.worker_records:
            remun = 0  # codes 001, 002 and 003 (M012)
            for occupation in record.occupations:
                starting, ending = occupation.starting_date, occupation.ending_date
                if (occupation.mean_working_hours > occupation.ref_mean_working_hours
                        or (ending is not None and (ending < starting or ending < first)) or starting > last):
                    found.extend(_occupation_dates(occupation, quarter, first, last))  # M004, M005, M006
                # The occupation's days in the quarter (_days_within, inline).
                start = starting if starting > first else first
                end = last if ending is None or ending > last else ending
                if start <= end:
                    services = occupation.services
                    if services:  # M007
                        calendar_days = (end - start).days + 1
                        allowed = -(-calendar_days * occupation.working_days_system // 7)  # ceil, hundredths
                        declared = 0
                        for service in services:
                            declared += service.days
                        if declared > allowed:
                            found.append(anomaly(
                                "M007", f"the services add up to {declared} hundredths of days, more than the "
                                f"{allowed} that {calendar_days} calendar days in a "
                                f"{occupation.working_days_system / 100:g}-day week allow",
                                f"{occupation.location}/Service[1]/ServiceNbrDays"))
                    with_days.append((inss, occupation.location, start, end))  # M010: check does it
                for r in occupation.remuns:
                    if r.code in BASE_REMUN_CODES:
                        remun += r.amount
            found.extend(_contributions(record, remun))
            for contribution in record.contributions:
                total += contribution.amount
    if dmfa.net_owed_amount != total:
        found.append(anomaly("M008", f"NetOwedAmount {dmfa.net_owed_amount} is not the sum of the contributions "
                             f"({total})", "/DmfA/NetOwedAmount"))
    return PreparedDmfA(dmfa, today, head, tuple(found), tuple(with_days),
                        tuple((inss, start, end) for inss, _location, start, end in with_days))


def _form(dmfa: DmfA, today: dt.date) -> Iterator[Anomaly]:
    """The declaration's checks that need nothing stored: M001, and M003 on the form alone."""
    today_quarter = Quarter.of(today)
    if dmfa.quarter.code >= today_quarter.code:
        yield anomaly("M001", f"quarter {dmfa.quarter} is not over yet: a quarter is declared after it ends",
                      "/DmfA/Quarter")
    if dmfa.declaration_type == "ORIGINAL" and dmfa.replaces is not None:
        yield anomaly("M003", "an ORIGINAL declaration cannot name a ReplacesDeclarationId",
                      "/DmfA/ReplacesDeclarationId")
    if dmfa.declaration_type == "REPLACEMENT" and dmfa.replaces is None:
        yield anomaly("M003", "a REPLACEMENT must name the declaration it replaces (ReplacesDeclarationId)",
                      "/DmfA/DeclarationType")


def _current(dmfa: DmfA, stored: StoredData) -> Iterator[Anomaly]:
    """M002, and M003 against the employer's current DmfA for the quarter (one read)."""
    current = stored.current_dmfa(dmfa.employer.noss, dmfa.quarter)
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
            occupations = record.occupations
            if len(occupations) < 2:  # most records: nothing can occur twice
                continue
            reported: set[int] = set()
            for occupation in occupations:
                if occupation.sequence in reported:  # seen before in this record
                    yield anomaly("M011", f"OccupationSequenceNbr {occupation.sequence} occurs twice in one "
                                  "WorkerRecord", f"{occupation.location}/OccupationSequenceNbr")
                reported.add(occupation.sequence)


def _occupation_dates(occupation: Occupation, quarter: Quarter, first: dt.date, last: dt.date) -> list[Anomaly]:
    """M005 or M004, then M006 (``prepare`` calls it only when one of them applies)."""
    found = []
    where = occupation.location
    if occupation.ending_date is not None and occupation.ending_date < occupation.starting_date:
        found.append(anomaly("M005", f"OccupationEndingDate {occupation.ending_date} is before "
                             f"OccupationStartingDate {occupation.starting_date}", f"{where}/OccupationEndingDate"))
    elif not overlaps(occupation.starting_date, occupation.ending_date, first, last):
        found.append(anomaly("M004", f"the occupation does not overlap quarter {quarter} "
                             f"({first} to {last})", f"{where}/OccupationStartingDate"))
    if occupation.mean_working_hours > occupation.ref_mean_working_hours:
        found.append(anomaly("M006", f"MeanWorkingHours {occupation.mean_working_hours} is greater than "
                             f"RefMeanWorkingHours {occupation.ref_mean_working_hours}", f"{where}/MeanWorkingHours"))
    return found


def _contributions(record: WorkerRecord, remun: int) -> list[Anomaly]:
    """M013, M009 and M012 of each contribution; ``remun``: the record's pay of codes 001, 002 and 003."""
    found = []
    manual = record.worker_code == MANUAL_WORKER
    allowed = ALLOWED_CONTRIBUTIONS.get(record.worker_code, ())
    expected_base = times_rate(remun, MANUAL_BASE_PER_CENT * 100) if manual else remun
    for contribution in record.contributions:
        code, base = contribution.code, contribution.base
        if code not in allowed:
            found.append(anomaly("M013", f"ContributionCode {code} is not allowed for WorkerCode "
                                 f"{record.worker_code}", f"{contribution.location}/ContributionCode"))
        expected = times_rate(base, CONTRIBUTION_RATES[code])
        if contribution.amount != expected:
            rate = CONTRIBUTION_RATES[code] / 100
            found.append(anomaly("M009", f"Amount {contribution.amount} is not Base {base} times {rate:g} % "
                                 f"({expected})", f"{contribution.location}/Amount"))
        if (code == "001" or code == "002") and base != expected_base:
            how = "108 % of " if manual else ""
            found.append(anomaly("M012", f"Base {base} is not {how}the worker record's pay of codes 001, 002 "
                                 f"and 003 ({expected_base})", f"{contribution.location}/Base"))
    return found
