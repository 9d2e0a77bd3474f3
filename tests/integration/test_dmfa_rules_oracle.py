"""The DmfA rules (one pass since dmfa-cpu) give exactly the anomalies of the rules as they were before: same
codes, severities, messages, locations and order, on DmfAs built to break every rule M001-M013, against real
Dimona periods read from either store (and offline).

The oracle below is the previous implementation, kept verbatim but for its names (and its arithmetic in
Decimal, as ``money.times_rate`` did it then).

Since pure-rules, the part of the rules that needs no stored data can be prepared beforehand (``dmfa.prepare``,
``rules.prepare_rules``; ``Ingest.submit`` does it before the declaration's transaction): every comparison
below runs the rules both ways (and through ``kind_rules``), which must give the same anomalies after the
same reads of the store, in the same order, as the oracle."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterator

import pytest
from sqlalchemy import insert, select

from declarations import samples
from declarations.domain.anomalies import Anomaly, anomaly, any_blocking
from declarations.domain.model import DmfA, Occupation, Quarter, WorkerRecord
from declarations.domain.ports import uncovered_by_periods
from declarations.domain.rules import RuleContext, kind_rules, prepare_rules
from declarations.domain.rules import dmfa as dmfa_rules
from declarations.domain.rules.dimona import overlaps
from declarations.store import facts
from declarations.store import tables as t
from declarations.services.ingest import Ingest
from declarations.store.views import StoredView
from declarations.xmlio.decoding import decode

EMPLOYER = "123456749"
TODAY = dt.date(2025, 11, 15)


# --- the oracle: the rules before dmfa-cpu ----------------------------------------------------------------

CONTRIBUTION_RATES = {"001": 1307, "002": 2500, "003": 813, "004": 2800}
ALLOWED_CONTRIBUTIONS = {"015": {"001", "002"}, "495": {"001", "002"}, "840": {"003"}, "050": {"004"}}
MANUAL_WORKER = "015"
MANUAL_BASE_PER_CENT = 108
BASE_REMUN_CODES = ("001", "002", "003")


def times_rate(base: int, per_ten_thousand: int) -> int:
    return int((Decimal(base) * per_ten_thousand / 10000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _days_within(occupation: Occupation, first: dt.date, last: dt.date) -> tuple[dt.date, dt.date] | None:
    start = max(occupation.starting_date, first)
    end = min(occupation.ending_date or last, last)
    return (start, end) if start <= end else None


def oracle_check(dmfa: DmfA, ctx: RuleContext) -> Iterator[Anomaly]:
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


# --- the rules today, both ways ---------------------------------------------------------------------------

class _Recording:
    """The store's answers, and the reads the rules made, in order."""

    def __init__(self, stored):
        self.stored, self.reads = stored, []

    def current_dmfa(self, employer, quarter):
        self.reads.append(("current_dmfa", employer, quarter))
        return self.stored.current_dmfa(employer, quarter)

    # M010's read: the oracle reads the workers' periods (periods_of), the rules since m010-sql ask the store
    # which occupations no period covers (uncovered), which must answer as periods_of and the oracle's
    # condition do.
    def periods_of(self, employer, inss_list):
        self.reads.append(("M010", employer))
        return self.stored.periods_of(employer, set(inss_list))

    def uncovered(self, employer, spans):
        self.reads.append(("M010", employer))
        found = self.stored.uncovered(employer, spans)
        assert found == uncovered_by_periods(self.stored, employer, spans)
        return found


def checked(dmfa: DmfA, stored) -> list[Anomaly]:
    """The oracle's anomalies, after asserting that today's rules give them, with the oracle's reads, three
    ways: ``check`` alone, ``check`` with what ``prepare`` found beforehand, and ``kind_rules`` with
    ``prepare_rules`` (as Ingest.submit calls them)."""
    def run(rules):
        recording = None if stored is None else _Recording(stored)
        found = list(rules(RuleContext(today=TODAY, stored=recording)))
        return found, recording and recording.reads

    expected = run(lambda ctx: oracle_check(dmfa, ctx))
    assert run(lambda ctx: dmfa_rules.check(dmfa, ctx)) == expected
    prepared = dmfa_rules.prepare(dmfa, TODAY)
    assert run(lambda ctx: dmfa_rules.check(dmfa, ctx, prepared)) == expected
    assert run(lambda ctx: dmfa_rules.check(dmfa, ctx, prepared)) == expected  # prepared once, checked again
    assert run(lambda ctx: kind_rules(dmfa, ctx, prepare_rules(dmfa, TODAY))) == expected
    return expected[0]


# --- DmfAs that break the rules ----------------------------------------------------------------------------

def _random_dmfa(rng: random.Random, people: list[str]) -> DmfA:
    year, number = rng.choice([(2025, 3), (2025, 2), (2024, 4), (2025, 4)])  # 2025 Q4 is not over (M001)
    first = Quarter(year, number).first_day
    workers = []
    for n in range(rng.randint(1, 12)):
        occupations = []
        for k in range(rng.choice([1, 1, 1, 2, 3])):
            start = first + dt.timedelta(days=rng.randint(-200, 120))
            end = rng.choice([None, None, start + dt.timedelta(days=rng.randint(-10, 200))])
            ref = rng.choice([3800, 3800, 2000])
            occupations.append(samples.occupation(
                sequence=rng.choice([k + 1, k + 1, k + 1, 1]), start=start, end=end, jc="302",
                wds=rng.choice([500, 500, 100, 700, 550]), mean=rng.choice([3800, 3800, 3000, 4000]), ref=ref,
                services=[(rng.choice(["001", "002"]), rng.choice([6000, 6429, 500, 9000, 20000]))
                          for _ in range(rng.choice([0, 1, 1, 2]))],
                remuns=[(rng.choice(["001", "002", "003", "010"]), rng.randint(0, 2_000_000))
                        for _ in range(rng.choice([0, 1, 1, 2]))]))
        code = rng.choice(["495", "015", "840", "050"])
        contributions = samples.standard_contributions(code, occupations)
        if rng.random() < 0.3:
            contributions = [(c, b + rng.choice([0, 1, -1, 5000]), a + rng.choice([0, 0, 1, -3]))
                             for c, b, a in contributions] + rng.choice([[], [("004", 1000, 280)], [("001", 7, 1)]])
        workers.append(samples.worker(rng.choice(people), sequence=rng.choice([n + 1, n + 1, n + 1, 1]),
                                      worker_code=code, occupations=occupations, contributions=contributions))
    replaces = rng.choice([None, None, 1, 999])
    element = samples.dmfa(message_id="m", sender_id="1001", noss=EMPLOYER, quarter=f"{year}{number}",
                           workers=workers, declaration_type=rng.choice(["ORIGINAL", "ORIGINAL", "REPLACEMENT"]),
                           replaces=replaces, net_owed=rng.choice([None, None, 12345]))
    dmfa = decode(element)
    if rng.random() < 0.3:  # a worker with two WorkerRecords (samples writes one per person)
        person = dmfa.persons[0]
        doubled = dataclasses.replace(person, worker_records=person.worker_records * 2)
        dmfa = dataclasses.replace(dmfa, persons=(doubled,) + dmfa.persons[1:])
    return dmfa


def _valid_dmfa(rng: random.Random, people: list[str]) -> DmfA:
    """A DmfA that breaks none of the rules that need nothing stored (M002 and M010 may still apply)."""
    year, number = rng.choice([(2025, 3), (2025, 2), (2024, 4)])
    first = Quarter(year, number).first_day
    workers = [samples.worker(inss, sequence=n + 1, worker_code=rng.choice(["495", "015", "840", "050"]),
                              occupations=[samples.occupation(
                                  sequence=k + 1, start=first + dt.timedelta(days=rng.randint(-100, 80)), jc="302",
                                  services=[("001", rng.choice([500, 1000, 2000]))],
                                  remuns=[(rng.choice(["001", "010"]), rng.randint(0, 900_000))])
                                  for k in range(rng.choice([1, 1, 2]))])
               for n, inss in enumerate(rng.sample(people, rng.randint(1, 8)))]
    declaration_type, replaces = rng.choice([("ORIGINAL", None), ("REPLACEMENT", 1), ("REPLACEMENT", 7)])
    return decode(samples.dmfa(message_id="m", sender_id="1001", noss=EMPLOYER, quarter=f"{year}{number}",
                               workers=workers, declaration_type=declaration_type, replaces=replaces))


def _other_employer(connection) -> str:
    return connection.execute(select(t.employer.c.noss).where(t.employer.c.noss != EMPLOYER).limit(1)).scalar_one()


def _store_periods(connection, people: list[str], rng: random.Random) -> None:
    """Dimona periods of the employer for some of ``people``: none, closed, open-ended, cancelled, other scope
    (the reader's TEST, another sender's), and some of another employer."""
    facts.ensure_persons(connection, people)
    other = _other_employer(connection)
    rows = []
    for n, inss in enumerate(people):
        for _ in range(n % 4):  # a quarter of the workers have none
            start = dt.date(2024, 6, 1) + dt.timedelta(days=rng.randint(0, 500))
            rows.append({"scope": rng.choice(["PROD", "PROD", "TEST:1001"]), "employer_noss": EMPLOYER,
                         "inss": inss, "worker_type": "OTH", "starting_date": start,
                         "ending_date": rng.choice([None, start + dt.timedelta(days=rng.randint(0, 60))]),
                         "joint_commission": "302", "planned_hours": None, "cancelled": rng.random() < 0.2,
                         "version": 1})
    # Periods no reader of the employer sees (drawn apart: ``rng`` draws the same as before), for a third of them.
    apart = random.Random(len(people))
    for inss in people[::3]:
        start = dt.date(2024, 6, 1) + dt.timedelta(days=apart.randint(0, 500))
        for scope, employer in (("PROD", other), ("TEST:2001", EMPLOYER)):
            rows.append({"scope": scope, "employer_noss": employer, "inss": inss, "worker_type": "OTH",
                         "starting_date": start, "ending_date": apart.choice([None, start + dt.timedelta(days=90)]),
                         "joint_commission": "302", "planned_hours": None, "cancelled": False, "version": 1})
    connection.execute(insert(t.employment_period), rows)


def _dmfa_row(connection, declaration_id: int, quarter: int) -> None:
    """A current DmfA of the employer, so that M002 and M003 have something to find."""
    facts.new_declaration(connection, received_at=dt.datetime(2025, 11, 1, tzinfo=dt.timezone.utc),
                          channel="CLI", original=b"x")
    connection.execute(insert(t.dmfa).values(
        declaration_id=declaration_id, scope="PROD", employer_noss=EMPLOYER, quarter=quarter,
        declaration_type="ORIGINAL", is_current=True, net_owed_amount=0))


def test_same_anomalies_as_before_against_the_store(app):
    rng = random.Random(4)
    people = samples.inss_series(20)
    with app.engine.begin() as connection:
        _store_periods(connection, people, rng)
        _dmfa_row(connection, 1, 20253)
        compared = Counter()
        for scope in ("PROD", "TEST:1001"):
            for n in range(150):
                dmfa = (_valid_dmfa if n % 5 == 0 else _random_dmfa)(rng, people)
                found = checked(dmfa, StoredView(connection, scope))
                compared.update(a.code for a in found)
                # The occupations with days in the quarter: M010 for those no period covers, none for the others.
                with_days = len(dmfa_rules.prepare(dmfa, TODAY).occupations)
                compared["covered"] += with_days - sum(a.code == "M010" for a in found)
                compared["valid"] += not found
                compared["warnings only"] += bool(found) and not any_blocking(found)
        # Every rule was exercised (and compared) many times, as were occupations that a period covers and
        # DmfAs accepted with warnings; a few without any anomaly.
        assert {f"M{n:03d}" for n in range(1, 14)} <= set(compared), compared
        assert min(count for what, count in compared.items() if what != "valid") >= 5, compared
        assert compared["valid"] >= 1, compared
        connection.rollback()


@pytest.mark.parametrize("seed", [1, 2])
def test_same_anomalies_as_before_offline(seed):
    rng = random.Random(seed)
    people = samples.inss_series(15)
    codes = Counter()
    for _ in range(200):
        found = checked(_random_dmfa(rng, people), None)
        codes.update(a.code for a in found)
        codes["valid"] += not checked(_valid_dmfa(rng, people), None)
    assert "M010" not in codes and "M002" not in codes and min(codes.values()) >= 5, codes


def _m010_case(connection):
    """A 2025 Q3 DmfA whose occupations each meet the periods M010 could get wrong, and the periods; with, per
    worker, whether a PROD reader and a TEST:1001 reader find the occupation (or each one) covered."""
    other = _other_employer(connection)
    d = dt.date
    july10, aug20 = d(2025, 7, 10), d(2025, 8, 20)
    # (occupations (start, end), periods (scope, employer, start, end, cancelled), covered for PROD, for TEST:1001)
    cases = [
        ([(july10, aug20)], [("PROD", EMPLOYER, d(2025, 6, 1), july10, False)], [True], [True]),  # its first day
        ([(july10, aug20)], [("PROD", EMPLOYER, aug20, d(2025, 9, 30), False)], [True], [True]),  # its last day
        ([(july10, aug20)], [("PROD", EMPLOYER, d(2025, 6, 1), d(2025, 7, 9), False),  # a day before, a day after
                             ("PROD", EMPLOYER, d(2025, 8, 21), None, False)], [False], [False]),
        ([(july10, aug20)], [("PROD", EMPLOYER, d(2025, 1, 1), None, False)], [True], [True]),  # open-ended
        ([(july10, aug20)], [("PROD", EMPLOYER, d(2025, 7, 1), d(2025, 9, 30), True)], [False], [False]),  # cancelled
        ([(july10, aug20)], [("PROD", other, d(2025, 7, 1), None, False)], [False], [False]),  # another employer
        ([(july10, aug20)], [("TEST:1001", EMPLOYER, d(2025, 7, 1), None, False)], [False], [True]),  # TEST
        ([(july10, aug20)], [("TEST:2001", EMPLOYER, d(2025, 7, 1), None, False)], [False], [False]),  # another's TEST
        ([(july10, aug20)], [], [False], [False]),  # no period at all
        ([(d(2025, 7, 1), d(2025, 7, 10)), (d(2025, 9, 1), None)],  # several periods, several occupations
         [("PROD", EMPLOYER, d(2025, 7, 1), d(2025, 7, 5), False), ("PROD", EMPLOYER, d(2025, 8, 1), d(2025, 8, 5), False),
          ("TEST:1001", EMPLOYER, d(2025, 9, 30), d(2025, 10, 31), False)], [True, False], [True, True]),
        ([(d(2025, 6, 1), None)], [("PROD", EMPLOYER, d(2025, 6, 1), d(2025, 6, 30), False)],  # before the quarter
         [False], [False]),
    ]
    people = samples.inss_series(len(cases))
    facts.ensure_persons(connection, people)
    connection.execute(insert(t.employment_period), [
        {"scope": scope, "employer_noss": employer, "inss": inss, "worker_type": "OTH", "starting_date": start,
         "ending_date": end, "joint_commission": "302", "planned_hours": None, "cancelled": cancelled, "version": 1}
        for inss, (_o, periods, _p, _t) in zip(people, cases) for scope, employer, start, end, cancelled in periods])
    dmfa = decode(samples.dmfa(message_id="m", sender_id="1001", noss=EMPLOYER, quarter="20253", workers=[
        samples.worker(inss, sequence=n + 1, occupations=[
            samples.occupation(sequence=k + 1, start=start, end=end, jc="302", services=[("001", 500)])
            for k, (start, end) in enumerate(occupations)])
        for n, (inss, (occupations, _periods, _p, _t)) in enumerate(zip(people, cases))]))
    return dmfa, people, cases


def test_m010_at_the_edges_of_the_periods(app):
    """M010 at a period's first and last day, open-ended, cancelled, another employer's, TEST (the reader's,
    another sender's), several periods per worker, none: as the oracle says, and as expected."""
    with app.engine.begin() as connection:
        dmfa, people, cases = _m010_case(connection)
        for reader, column in (("PROD", 2), ("TEST:1001", 3)):
            found = checked(dmfa, StoredView(connection, reader))
            uncovered = [a.location for a in found if a.code == "M010"]
            expected = [occupation.location for person, case in zip(dmfa.persons, cases)
                        for occupation, covered in zip(person.worker_records[0].occupations, case[column])
                        if not covered]
            assert uncovered == expected and len(expected) >= 6, (reader, found)
        connection.rollback()


def test_uncovered_answers_as_periods_of_does(app):
    """StoredView.uncovered, on either store, against periods_of and M010's condition in Python: the crafted
    cases, then random spans over random periods (one worker with none anywhere in the store), 1,000 at a
    time, in both readers' scopes."""
    rng = random.Random(5)
    with app.engine.begin() as connection:
        dmfa, people, cases = _m010_case(connection)
        more = samples.inss_series(60)[len(people):]
        _store_periods(connection, more, rng)
        spans = dmfa_rules.prepare(dmfa, TODAY).spans
        for reader in ("PROD", "TEST:1001"):
            view = StoredView(connection, reader)
            assert view.uncovered(EMPLOYER, spans) == uncovered_by_periods(view, EMPLOYER, spans)
            assert view.uncovered(EMPLOYER, ()) == set()
            for _ in range(3):
                random_spans = []
                for _ in range(1000):
                    start = dt.date(2024, 6, 1) + dt.timedelta(days=rng.randint(-30, 560))
                    random_spans.append((rng.choice(more + people + ["80000000000"]), start,
                                         start + dt.timedelta(days=rng.choice([0, 0, 1, 5, 40]))))
                found = view.uncovered(EMPLOYER, random_spans)
                assert found == uncovered_by_periods(view, EMPLOYER, random_spans)
                assert 100 < len(found) < 900
        # (Workers a comma-separated list would make ambiguous: test_periods_of.py.)
        connection.rollback()


@pytest.mark.parametrize("covered", [False, True], ids=["no-dimona", "covered"])
def test_the_benchmark_dmfa_gives_one_m010_per_uncovered_worker(app, covered):
    """The batch benchmark's DmfA: 1,000 workers, no Dimona period: 1,000 M010 warnings, as before; every
    worker with an open-ended period: none."""
    people = samples.inss_series(1000)
    dmfa = decode(samples.dmfa(message_id="m", sender_id="1001", noss=EMPLOYER, quarter="20253", workers=[
        samples.worker(p, sequence=n + 1, occupations=[samples.occupation(
            start=dt.date(2025, 7, 1), jc="302", services=[("001", 6000)], remuns=[("001", 300000 + n)])])
        for n, p in enumerate(people)]))
    with app.engine.begin() as connection:
        if covered:
            facts.ensure_persons(connection, people)
            connection.execute(insert(t.employment_period), [
                {"scope": "PROD", "employer_noss": EMPLOYER, "inss": inss, "worker_type": "OTH",
                 "starting_date": dt.date(2025, 5, 1), "ending_date": None, "joint_commission": "302",
                 "planned_hours": None, "cancelled": False, "version": 1} for inss in people])
        found = checked(dmfa, StoredView(connection, "PROD"))
        connection.rollback()
    assert [a.code for a in found] == ([] if covered else ["M010"] * 1000)


def test_prepared_for_another_dmfa_or_day_is_refused():
    rng = random.Random(3)
    one, other = (_random_dmfa(rng, samples.inss_series(5)) for _ in range(2))
    ctx = RuleContext(today=TODAY, stored=None)
    with pytest.raises(ValueError):
        list(dmfa_rules.check(one, ctx, dmfa_rules.prepare(other, TODAY)))
    with pytest.raises(ValueError):
        list(dmfa_rules.check(one, ctx, dmfa_rules.prepare(one, TODAY + dt.timedelta(days=1))))
    assert prepare_rules(decode(samples.dimona(
        "In", message_id="m", sender_id="1001", noss=EMPLOYER, INSS=samples.valid_inss(1),
        StartingDate=TODAY, JointCommissionNbr="302", WorkerType="OTH")), TODAY) is None


# --- in the pipeline ---------------------------------------------------------------------------------------

def _pipeline_dmfa(message_id: str, people: list[str], **values):
    return samples.dmfa(message_id=message_id, sender_id="1001", noss=EMPLOYER, quarter="20253", workers=[
        samples.worker(p, sequence=n + 1, occupations=[samples.occupation(
            start=dt.date(2025, 7, 1), jc="302", services=[("001", 6000)], remuns=[("001", 300000 + n)])])
        for n, p in enumerate(people)], **values)


def _traced(monkeypatch, events: list[str], *, fail: bool = False):
    """``dmfa.prepare`` noted in ``events`` (or failing), and a ``turn`` that notes when it is entered and left."""
    real = dmfa_rules.prepare

    def prepare(dmfa, today):
        events.append("prepare")
        if fail:
            raise ArithmeticError("as a pay beyond money.times_rate's precision would")
        return real(dmfa, today)

    monkeypatch.setattr(dmfa_rules, "prepare", prepare)

    @contextlib.contextmanager
    def turn():
        events.append("turn")
        try:
            yield
        finally:
            events.append("end")

    return turn


def test_submit_prepares_the_rules_before_the_turn_with_the_same_anomalies(app, demo_signer, monkeypatch):
    """Ingest.submit prepares a DmfA's rules before its turn (the batch's chain of transactions), once; the
    anomalies are those of the rules run whole in the transaction, as before."""
    signer = demo_signer("sender-1001")
    people = samples.inss_series(30)
    events: list[str] = []
    turn = _traced(monkeypatch, events)
    # Refused (so stored as nothing current): M003 against the store, M007, M008, then M010 for every worker.
    rigged = dict(declaration_type="REPLACEMENT", replaces=999, net_owed=5)
    over = _pipeline_dmfa("m-1", people, **rigged)
    over.find(f".//{{{over.nsmap[None]}}}ServiceNbrDays").text = "9000"
    first = app.ingest.submit(samples.to_bytes(signer.sign(over)), channel="CLI", turn=turn())
    assert events == ["prepare", "turn", "end"]
    codes = [a.code for a in first.outcome.anomalies]
    assert codes == ["M003", "M007", "M008"] + ["M010"] * 30 and first.outcome.status == "REFUSED"
    # The same content without anything prepared: the rules run whole in the transaction.
    events.clear()
    monkeypatch.setattr(Ingest, "_prepared_rules", staticmethod(lambda examined, today: None))
    over.find(f".//{{{over.nsmap[None]}}}MessageId").text = "m-2"
    again = app.ingest.submit(samples.to_bytes(signer.sign(over)), channel="CLI", turn=turn())
    assert events == ["turn", "prepare", "end"]
    assert again.outcome.anomalies == first.outcome.anomalies
    # An accepted one: warnings only.
    monkeypatch.undo()
    events.clear()
    turn = _traced(monkeypatch, events)
    accepted = app.ingest.submit(samples.to_bytes(signer.sign(_pipeline_dmfa("m-3", people))), channel="CLI",
                                 turn=turn())
    assert events == ["prepare", "turn", "end"]
    assert accepted.outcome.status == "ACCEPTED_WITH_WARNINGS"
    assert [a.code for a in accepted.outcome.anomalies] == ["M010"] * 30


def test_rules_that_fail_beforehand_fail_in_the_transaction_as_before(app, demo_signer, monkeypatch):
    """What the pure rules raise before the turn is raised again in the transaction, if the DmfA gets to its
    rules: a DmfA refused before them (here S003, signed by another sender) gets its refusal, as before."""
    events: list[str] = []
    turn = _traced(monkeypatch, events, fail=True)
    people = samples.inss_series(3)
    with pytest.raises(ArithmeticError):
        app.ingest.submit(samples.to_bytes(demo_signer("sender-1001").sign(_pipeline_dmfa("m-1", people))),
                          channel="CLI", turn=turn())
    assert events == ["prepare", "turn", "prepare", "end"]
    events.clear()
    refused = app.ingest.submit(samples.to_bytes(demo_signer("sender-2001").sign(_pipeline_dmfa("m-2", people))),
                                channel="CLI", turn=turn())
    assert events == ["prepare", "turn", "end"]
    assert [a.code for a in refused.outcome.anomalies] == ["S003"]
