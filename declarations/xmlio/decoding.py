"""Signed, XSD-valid XML -> the domain's declaration values.

Runs only on what the signature covered and after the XSD check, so it can
trust structure and lexical forms. Locations are built while walking (by
position), which keeps a DmfA of thousands of workers linear.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from declarations import ns
from declarations.domain import model as m
from declarations.domain.scenarios import BY_ELEMENT


# XSD 1.0 collapses whitespace around dates, date-times, integers and booleans
# before checking them, so the decoder strips them too (int() already does).
def _d(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text.strip()) if text and text.strip() else None


def _dt(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _i(text: str | None) -> int | None:
    return int(text) if text is not None and text != "" else None


class _Reader:
    """findtext in one namespace, without repeating it everywhere."""

    def __init__(self, namespace: str):
        self.ns = namespace

    def text(self, element: etree._Element, name: str) -> str | None:
        child = element.find(f"{{{self.ns}}}{name}")
        return None if child is None else (child.text or "")

    def header(self, root: etree._Element) -> m.Header:
        header = root.find(f"{{{self.ns}}}Header")
        return m.Header(
            message_id=self.text(header, "MessageId"),
            sender_id=self.text(header, "SenderId"),
            creation=_dt(self.text(header, "CreationDateTime")),
            environment=self.text(header, "Environment"),
        )

    def employer(self, root: etree._Element) -> m.EmployerRef:
        employer = root.find(f"{{{self.ns}}}Employer")
        return m.EmployerRef(self.text(employer, "NOSSRegistrationNbr"), self.text(employer, "EnterpriseNbr"))


def read_header(root: etree._Element) -> m.Header | None:
    """The Header, if it can be read (even when the rest is not XSD-valid)."""
    namespace = etree.QName(root).namespace
    if root.tag not in ns.KIND_BY_ROOT:
        return None
    reader = _Reader(namespace)
    try:
        return reader.header(root)
    except (AttributeError, TypeError, ValueError):
        # Partial header: keep what is there, for the result's echo fields.
        header = root.find(f"{{{namespace}}}Header")
        if header is None:
            return None
        return m.Header(
            message_id=reader.text(header, "MessageId"),
            sender_id=reader.text(header, "SenderId"),
            creation=None,
            environment=reader.text(header, "Environment"),
        )


def decode(root: etree._Element) -> m.Declaration:
    kind = ns.KIND_BY_ROOT[root.tag]
    return _DECODERS[kind](root)


def _dimona(root: etree._Element) -> m.Dimona:
    r = _Reader(ns.DIMONA)
    action_element = next(c for c in root.iterchildren() if etree.QName(c).localname.startswith("Dimona"))
    name = etree.QName(action_element).localname
    t = lambda field: r.text(action_element, field)  # noqa: E731
    if name == "DimonaIn":
        action: m.DimonaAction = m.DimonaIn(
            inss=t("INSS"), starting_date=_d(t("StartingDate")), ending_date=_d(t("EndingDate")),
            joint_commission=t("JointCommissionNbr"), worker_type=t("WorkerType"),
            planned_hours=_i(t("PlannedHoursNbr")))
    elif name == "DimonaOut":
        action = m.DimonaOut(period_id=int(t("PeriodId")), ending_date=_d(t("EndingDate")))
    elif name == "DimonaUpdate":
        action = m.DimonaUpdate(
            period_id=int(t("PeriodId")), starting_date=_d(t("StartingDate")), ending_date=_d(t("EndingDate")),
            joint_commission=t("JointCommissionNbr"), planned_hours=_i(t("PlannedHoursNbr")))
    else:
        action = m.DimonaCancel(period_id=int(t("PeriodId")))
    return m.Dimona(r.header(root), r.employer(root), action)


# Tag -> local name, filled as met (a handful of DmfA tags): saves a string split per element.
_LOCAL: dict[str, str] = {}


def _split(element: etree._Element) -> tuple[dict[str, str], dict[str, list[etree._Element]]]:
    """One pass over an element's children: leaf texts by local name, and the
    non-leaf children grouped by local name (the XSD guarantees one namespace).
    A DmfA has tens of thousands of elements: one pass beats one find per field."""
    leaves: dict[str, str] = {}
    groups: dict[str, list[etree._Element]] = {}
    local = _LOCAL
    for child in element:
        tag = child.tag
        name = local.get(tag)
        if name is None:
            if not isinstance(tag, str):
                continue  # comments and processing instructions
            name = local[tag] = tag.rpartition("}")[2]
        if len(child):
            groups.setdefault(name, []).append(child)
        else:
            leaves[name] = child.text or ""
    return leaves, groups


def _dmfa(root: etree._Element) -> m.DmfA:
    r = _Reader(ns.DMFA)
    head, body = _split(root)
    persons = []
    for p_index, person in enumerate(body.get("NaturalPerson", ()), 1):
        p_loc = f"/DmfA/NaturalPerson[{p_index}]"
        p_leaves, p_groups = _split(person)
        records = []
        for w_index, record in enumerate(p_groups.get("WorkerRecord", ()), 1):
            w_loc = f"{p_loc}/WorkerRecord[{w_index}]"
            w_leaves, w_groups = _split(record)
            occupations = []
            for o_index, occ in enumerate(w_groups.get("Occupation", ()), 1):
                o_loc = f"{w_loc}/Occupation[{o_index}]"
                o, o_groups = _split(occ)
                services = []
                for i, service in enumerate(o_groups.get("Service", ()), 1):
                    f, _ = _split(service)
                    services.append(m.Service(f["ServiceCode"], int(f["ServiceNbrDays"]),
                                              _i(f.get("ServiceNbrHours")), f"{o_loc}/Service[{i}]"))
                remuns = []
                for i, remun in enumerate(o_groups.get("Remun", ()), 1):
                    f, _ = _split(remun)
                    remuns.append(m.Remun(f["RemunCode"], int(f["RemunAmount"]), f"{o_loc}/Remun[{i}]"))
                occupations.append(m.Occupation(
                    sequence=int(o["OccupationSequenceNbr"]),
                    starting_date=_d(o["OccupationStartingDate"]),
                    ending_date=_d(o.get("OccupationEndingDate")),
                    joint_commission=o["JointCommissionNbr"],
                    working_days_system=int(o["WorkingDaysSystem"]),
                    mean_working_hours=int(o["MeanWorkingHours"]),
                    ref_mean_working_hours=int(o["RefMeanWorkingHours"]),
                    services=tuple(services), remuns=tuple(remuns), location=o_loc))
            contributions = []
            for i, contribution in enumerate(w_groups.get("Contribution", ()), 1):
                f, _ = _split(contribution)
                contributions.append(m.Contribution(f["ContributionCode"], int(f["Base"]), int(f["Amount"]),
                                                    f"{w_loc}/Contribution[{i}]"))
            records.append(m.WorkerRecord(w_leaves["WorkerCode"], tuple(occupations), tuple(contributions), w_loc))
        persons.append(m.NaturalPerson(int(p_leaves["NaturalPersonSequenceNbr"]), p_leaves["INSS"],
                                       tuple(records), p_loc))
    return m.DmfA(
        header=r.header(root), employer=r.employer(root), quarter=m.Quarter.parse(head["Quarter"].strip()),
        declaration_type=head["DeclarationType"], replaces=_i(head.get("ReplacesDeclarationId")),
        net_owed_amount=int(head["NetOwedAmount"]), persons=tuple(persons))


_FIELD_TYPES = {
    "date": _d,
    "datetime": _dt,
    "int": int,
    "bool": lambda s: s.strip() in ("true", "1"),
    "text": str,
    "month": lambda s: s.strip(),  # xs:gYearMonth 'YYYY-MM', kept as text
}


def _social_risk(root: etree._Element) -> m.SocialRisk:
    r = _Reader(ns.DRS)
    element = next(c for c in root.iterchildren() if etree.QName(c).localname in BY_ELEMENT)
    scenario = BY_ELEMENT[etree.QName(element).localname]
    data = {}
    for f in scenario.fields:
        text = r.text(element, f.name)
        data[f.name] = None if text is None else _FIELD_TYPES[f.type](text)
    reference = None
    ref = element.find(f"{{{ns.DRS}}}ReferenceData")
    if ref is not None:
        reference = m.ReferenceData(int(r.text(ref, "QuarterlyGrossRemun")), int(r.text(ref, "WorkingTimeFraction")),
                                    r.text(ref, "JointCommissionNbr"))
    return m.SocialRisk(r.header(root), r.employer(root), r.text(root, "INSS"), _d(r.text(root, "EventDate")),
                        scenario, data, reference)


_DECODERS = {"DIMONA": _dimona, "DMFA": _dmfa, "DRS": _social_risk}
