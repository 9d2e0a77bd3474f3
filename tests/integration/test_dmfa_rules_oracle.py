"""The DmfA rules (one pass since dmfa-cpu) give exactly the anomalies of the rules as they were before: same
codes, severities, messages, locations and order, on DmfAs built to break every rule M001-M013, against real
Dimona periods read from either store (and offline).

The oracle below is the previous implementation, kept verbatim but for its names (and its arithmetic in
Decimal, as ``money.times_rate`` did it then)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterator

import pytest
from sqlalchemy import insert

from declarations import samples
from declarations.domain.anomalies import Anomaly, anomaly
from declarations.domain.model import DmfA, Occupation, Quarter, WorkerRecord
from declarations.domain.rules import RuleContext
from declarations.domain.rules import dmfa as dmfa_rules
from declarations.domain.rules.dimona import overlaps
from declarations.store import facts
from declarations.store import tables as t
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


def _store_periods(connection, people: list[str], rng: random.Random) -> None:
    """Dimona periods of the employer for some of ``people``: none, closed, open-ended, cancelled, other scope."""
    facts.ensure_persons(connection, people)
    rows = []
    for n, inss in enumerate(people):
        for _ in range(n % 4):  # a quarter of the workers have none
            start = dt.date(2024, 6, 1) + dt.timedelta(days=rng.randint(0, 500))
            rows.append({"scope": rng.choice(["PROD", "PROD", "TEST:1001"]), "employer_noss": EMPLOYER,
                         "inss": inss, "worker_type": "OTH", "starting_date": start,
                         "ending_date": rng.choice([None, start + dt.timedelta(days=rng.randint(0, 60))]),
                         "joint_commission": "302", "planned_hours": None, "cancelled": rng.random() < 0.2,
                         "version": 1})
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
            ctx = RuleContext(today=TODAY, stored=StoredView(connection, scope))
            for _ in range(150):
                dmfa = _random_dmfa(rng, people)
                expected = list(oracle_check(dmfa, ctx))
                assert list(dmfa_rules.check(dmfa, ctx)) == expected
                compared.update(a.code for a in expected)
        # Every rule was exercised (and compared) many times.
        assert {f"M{n:03d}" for n in range(1, 14)} <= set(compared), compared
        assert min(compared.values()) >= 5, compared
        connection.rollback()


@pytest.mark.parametrize("seed", [1, 2])
def test_same_anomalies_as_before_offline(seed):
    rng = random.Random(seed)
    people = samples.inss_series(15)
    ctx = RuleContext(today=TODAY, stored=None)
    for _ in range(200):
        dmfa = _random_dmfa(rng, people)
        assert list(dmfa_rules.check(dmfa, ctx)) == list(oracle_check(dmfa, ctx))


def test_the_benchmark_dmfa_gives_one_m010_per_worker(app):
    """The batch benchmark's DmfA: 1,000 workers, no Dimona period: 1,000 M010 warnings, as before."""
    people = samples.inss_series(1000)
    dmfa = decode(samples.dmfa(message_id="m", sender_id="1001", noss=EMPLOYER, quarter="20253", workers=[
        samples.worker(p, sequence=n + 1, occupations=[samples.occupation(
            start=dt.date(2025, 7, 1), jc="302", services=[("001", 6000)], remuns=[("001", 300000 + n)])])
        for n, p in enumerate(people)]))
    with app.engine.begin() as connection:
        ctx = RuleContext(today=TODAY, stored=StoredView(connection, "PROD"))
        found = list(dmfa_rules.check(dmfa, ctx))
        assert found == list(oracle_check(dmfa, ctx))
    assert [a.code for a in found] == ["M010"] * 1000
