"""Build declaration documents from plain values (unsigned).

Used by the demo, the fixture generator, the tests and the benchmarks, so
that all of them write the contract's element order in one place.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from lxml import etree

from declarations import ns


class _Doc:
    def __init__(self, namespace: str, root: str):
        self.ns = namespace
        self.root = etree.Element(f"{{{namespace}}}{root}", nsmap={None: namespace})

    def add(self, parent: etree._Element, name: str, value: Any = None) -> etree._Element:
        child = etree.SubElement(parent, f"{{{self.ns}}}{name}")
        if value is not None:
            child.text = value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)
        return child

    def fields(self, parent: etree._Element, pairs: Iterable[tuple[str, Any]]) -> None:
        for name, value in pairs:
            if value is not None:
                self.add(parent, name, value)

    def head(self, *, message_id: str, sender_id: str, noss: str, enterprise_nbr: str | None,
             created: dt.datetime, environment: str) -> None:
        header = self.add(self.root, "Header")
        self.fields(header, [("MessageId", message_id), ("SenderId", sender_id),
                             ("CreationDateTime", created.isoformat(timespec="seconds")),
                             ("Environment", environment)])
        employer = self.add(self.root, "Employer")
        self.fields(employer, [("NOSSRegistrationNbr", noss), ("EnterpriseNbr", enterprise_nbr)])


DEFAULT_CREATED = dt.datetime(2025, 1, 1, 9, 0, tzinfo=dt.timezone.utc)


def dimona(action: str, *, message_id: str, sender_id: str, noss: str, enterprise_nbr: str | None = None,
           created: dt.datetime = DEFAULT_CREATED, environment: str = "PROD", **values) -> etree._Element:
    """action: In | Out | Update | Cancel; values in the contract's order by name, e.g.
    INSS=..., StartingDate=..., EndingDate=..., JointCommissionNbr=..., WorkerType=..., PlannedHoursNbr=..."""
    doc = _Doc(ns.DIMONA, "Dimona")
    doc.head(message_id=message_id, sender_id=sender_id, noss=noss, enterprise_nbr=enterprise_nbr, created=created,
             environment=environment)
    order = {"In": ["INSS", "StartingDate", "EndingDate", "JointCommissionNbr", "WorkerType", "PlannedHoursNbr"],
             "Out": ["PeriodId", "EndingDate"],
             "Update": ["PeriodId", "StartingDate", "EndingDate", "JointCommissionNbr", "PlannedHoursNbr"],
             "Cancel": ["PeriodId"]}[action]
    unknown = set(values) - set(order)
    if unknown:
        raise TypeError(f"Dimona{action} has no {sorted(unknown)}")
    element = doc.add(doc.root, f"Dimona{action}")
    doc.fields(element, [(name, values.get(name)) for name in order])
    return doc.root


def occupation(sequence: int = 1, *, start: dt.date, end: dt.date | None = None, jc: str = "200",
               wds: int = 500, mean: int = 3800, ref: int = 3800,
               services: Iterable[tuple[str, int]] = (("001", 6429),),
               remuns: Iterable[tuple[str, int]] = (("001", 900000),)) -> dict:
    return dict(sequence=sequence, start=start, end=end, jc=jc, wds=wds, mean=mean, ref=ref,
                services=list(services), remuns=list(remuns))


def worker(inss: str, *, sequence: int, worker_code: str = "495", occupations: list[dict],
           contributions: Iterable[tuple[str, int, int]] | None = None) -> dict:
    """contributions: (code, base, amount); None computes the right ones for the worker code."""
    if contributions is None:
        contributions = standard_contributions(worker_code, occupations)
    return dict(inss=inss, sequence=sequence, worker_code=worker_code, occupations=occupations,
                contributions=list(contributions))


RATES = {"001": 1307, "002": 2500, "003": 813, "004": 2800}
CODES = {"015": ("001", "002"), "495": ("001", "002"), "840": ("003",), "050": ("004",)}


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def standard_contributions(worker_code: str, occupations: list[dict]) -> list[tuple[str, int, int]]:
    pay = sum(amount for o in occupations for code, amount in o["remuns"] if code in ("001", "002", "003"))
    base = _half_up(pay * 108, 100) if worker_code == "015" else pay
    return [(code, base, _half_up(base * RATES[code], 10000)) for code in CODES[worker_code]]


def dmfa(*, message_id: str, sender_id: str, noss: str, quarter: str, workers: list[dict],
         enterprise_nbr: str | None = None, declaration_type: str = "ORIGINAL", replaces: int | None = None,
         net_owed: int | None = None, created: dt.datetime = DEFAULT_CREATED,
         environment: str = "PROD") -> etree._Element:
    doc = _Doc(ns.DMFA, "DmfA")
    doc.head(message_id=message_id, sender_id=sender_id, noss=noss, enterprise_nbr=enterprise_nbr, created=created,
             environment=environment)
    if net_owed is None:
        net_owed = sum(amount for w in workers for _code, _base, amount in w["contributions"])
    doc.fields(doc.root, [("Quarter", quarter), ("DeclarationType", declaration_type),
                          ("ReplacesDeclarationId", replaces), ("NetOwedAmount", net_owed)])
    for w in workers:
        person = doc.add(doc.root, "NaturalPerson")
        doc.fields(person, [("NaturalPersonSequenceNbr", w["sequence"]), ("INSS", w["inss"])])
        record = doc.add(person, "WorkerRecord")
        doc.add(record, "WorkerCode", w["worker_code"])
        for o in w["occupations"]:
            occ = doc.add(record, "Occupation")
            doc.fields(occ, [("OccupationSequenceNbr", o["sequence"]), ("OccupationStartingDate", o["start"]),
                             ("OccupationEndingDate", o["end"]), ("JointCommissionNbr", o["jc"]),
                             ("WorkingDaysSystem", o["wds"]), ("MeanWorkingHours", o["mean"]),
                             ("RefMeanWorkingHours", o["ref"])])
            for code, days in o["services"]:
                service = doc.add(occ, "Service")
                doc.fields(service, [("ServiceCode", code), ("ServiceNbrDays", days)])
            for code, amount in o["remuns"]:
                remun = doc.add(occ, "Remun")
                doc.fields(remun, [("RemunCode", code), ("RemunAmount", amount)])
        for code, base, amount in w["contributions"]:
            contribution = doc.add(record, "Contribution")
            doc.fields(contribution, [("ContributionCode", code), ("Base", base), ("Amount", amount)])
    return doc.root


def social_risk(scenario_element: str, *, message_id: str, sender_id: str, noss: str, inss: str,
                event_date: dt.date, enterprise_nbr: str | None = None, reference: tuple[int, int, str] | None = None,
                created: dt.datetime = DEFAULT_CREATED, environment: str = "PROD", **fields) -> etree._Element:
    """fields: the scenario's elements by name, in catalogue order (domain/scenarios.py)."""
    from declarations.domain.scenarios import BY_ELEMENT

    scenario = BY_ELEMENT[scenario_element]
    doc = _Doc(ns.DRS, "SocialRisk")
    doc.head(message_id=message_id, sender_id=sender_id, noss=noss, enterprise_nbr=enterprise_nbr, created=created,
             environment=environment)
    doc.fields(doc.root, [("INSS", inss), ("EventDate", event_date)])
    element = doc.add(doc.root, scenario_element)
    values = {k: ("true" if v is True else "false" if v is False else v) for k, v in fields.items()}
    doc.fields(element, [(f.name, values.get(f.name)) for f in scenario.fields])
    if reference is not None:
        ref = doc.add(element, "ReferenceData")
        doc.fields(ref, [("QuarterlyGrossRemun", reference[0]), ("WorkingTimeFraction", reference[1]),
                         ("JointCommissionNbr", reference[2])])
    return doc.root


def to_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def valid_inss(n: int, *, birth: str = "850731") -> str:
    """The n-th valid national-register INSS born on ``birth`` (YYMMDD, before 2000), n < 999."""
    base = f"{birth}{n + 1:03d}"
    return f"{base}{97 - int(base) % 97:02d}"


def inss_series(count: int) -> list[str]:
    """``count`` distinct valid INSS numbers (spread over birth days)."""
    out = []
    day = dt.date(1960, 1, 1)
    while len(out) < count:
        out.extend(valid_inss(n, birth=day.strftime("%y%m%d")) for n in range(min(998, count - len(out))))
        day += dt.timedelta(days=1)
    return out
