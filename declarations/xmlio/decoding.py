"""Signed, XSD-valid XML -> the domain's declaration values.

Runs only on what the signature covered and after the XSD check, so it can
trust structure and lexical forms. Locations are built while walking (by
position), which keeps a DmfA of thousands of workers linear.
"""

from __future__ import annotations

import datetime as dt
import threading

from lxml import etree

from declarations import ns
from declarations.domain import model as m
from declarations.domain.scenarios import BY_ELEMENT
from declarations.xmlio.parsing import parse


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


# --- DmfA ---------------------------------------------------------------------------------------
#
# A DmfA of 1,000 workers has ~26,000 elements. Reading them one by one from Python costs a proxy
# object, a tag string and a text string each: 24-25 ms per such DmfA, 2.7x its parse + XSD
# (bench/decode_dmfa.py). So libxslt walks the NaturalPersons in C and writes them out as one line
# of text, which str.split (also C) cuts into tokens that Python reads in one pass:
#
#   P 1 60010100172 W 495 O 1 2025-07-01 302 500 3800 3800 S 001 6000 R 001 300000 C 001 300000 39210...
#
# Each NaturalPerson, WorkerRecord, Occupation, Service, Remun and Contribution writes a space and its
# letter; every other element (a leaf: the XSD gives these six element-only content and every other
# element a simple type) writes a space and then its text. Why the cutting is safe, from dmfa.xsd
# and common.xsd, which this runs after:
# - The letters PWOSRC never occur in a value: under a NaturalPerson every leaf is an integer
#   (xs:int, xs:long), a date (pattern [0-9]{4}-[0-9]{2}-[0-9]{2}), an INSS ([0-9]{11}), a joint
#   commission ([0-9]{3}(\.[0-9]{2})?) or a code (enumerations of digits). So a token is a letter
#   or a value, and a value is never empty.
# - No value has white space inside: the codes, INSS and joint commission are xs:string patterns
#   without any; integers and dates may carry white space only around (XSD 1.0 collapses it
#   before checking), which str.split() drops, as int() and _d did. So the tokens between two
#   letters are that element's leaves in document order, and the white space of an indented
#   document (text between elements) only adds separators.
# - A leaf's value is all its text: processing instructions (kept by exclusive c14n; comments
#   and CDATA are not) write nothing, and the text around one is written whole.
# - Only one leaf per element is optional (OccupationEndingDate, third of seven in an
#   Occupation; ServiceNbrHours, third of three in a Service), so the number of values before the
#   next letter (or the end) says which leaves are there.
# - The elements come in the XSD's sequence order: an Occupation's leaves, then its Services,
#   then its Remuns; a WorkerRecord's WorkerCode, Occupations, then Contributions.
# The Header, the Employer and the DmfA's own leaves are read with find (a few elements).
_PERSONS_XSLT = f"""\
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:d="{ns.DMFA}">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:template match="/"><xsl:apply-templates select="d:DmfA/d:NaturalPerson"/></xsl:template>
  <xsl:template match="d:NaturalPerson"> P<xsl:apply-templates/></xsl:template>
  <xsl:template match="d:WorkerRecord"> W<xsl:apply-templates/></xsl:template>
  <xsl:template match="d:Occupation"> O<xsl:apply-templates/></xsl:template>
  <xsl:template match="d:Service"> S<xsl:apply-templates/></xsl:template>
  <xsl:template match="d:Remun"> R<xsl:apply-templates/></xsl:template>
  <xsl:template match="d:Contribution"> C<xsl:apply-templates/></xsl:template>
  <xsl:template match="*"><xsl:text> </xsl:text><xsl:apply-templates/></xsl:template>
</xsl:stylesheet>""".encode()
# (xsl:apply-templates without select: the built-in rules copy text and drop processing
# instructions and comments. Measured on 1,000 workers, the alternatives cost more: a template on
# text nodes or xsl:value-of per leaf 4.1-4.9 ms vs 3.5, select="*" 5.5 ms, one xsl:value-of per
# named field 6 ms.)

# lxml: a stylesheet is best used in the thread that compiled it, so one per thread.
_THREAD = threading.local()


def _persons_text(root: etree._Element) -> str:
    transform = getattr(_THREAD, "persons_xslt", None)
    if transform is None:
        transform = _THREAD.persons_xslt = etree.XSLT(
            parse(_PERSONS_XSLT), access_control=etree.XSLTAccessControl.DENY_ALL)
    return str(transform(root))


_service = m.positional_builder(m.Service)
_remun = m.positional_builder(m.Remun)
_occupation = m.positional_builder(m.Occupation)
_contribution = m.positional_builder(m.Contribution)
_worker_record = m.positional_builder(m.WorkerRecord)
_natural_person = m.positional_builder(m.NaturalPerson)
_LETTERS = frozenset("PWOSRC")


def _persons(text: str, letters=_LETTERS, date=dt.date.fromisoformat, service=_service, remun=_remun,
             occupation=_occupation, contribution=_contribution, worker_record=_worker_record,
             natural_person=_natural_person) -> tuple[m.NaturalPerson, ...]:
    """The NaturalPersons from ``_persons_text``, its tokens read once, in order. (The builders and the rest
    are parameters only to be local names: the loop below runs ~25 times per worker; a split per element
    and group instead cost ~1 ms more per 1,000 workers.)"""
    tokens = iter(text.split())
    try:
        take = tokens.__next__
        token = next(tokens, None)
        persons = []
        while token == "P":
            p_loc = f"/DmfA/NaturalPerson[{len(persons) + 1}]"
            sequence, inss = int(take()), take()
            token = next(tokens, None)
            records = []
            while token == "W":
                w_loc = f"{p_loc}/WorkerRecord[{len(records) + 1}]"
                worker_code = take()
                token = next(tokens, None)
                occupations = []
                while token == "O":
                    o_loc = f"{w_loc}/Occupation[{len(occupations) + 1}]"
                    seq, start, third, fourth, fifth, sixth = take(), take(), take(), take(), take(), take()
                    token = next(tokens, None)
                    if token is None or token in letters:  # six leaves: no OccupationEndingDate
                        end, jc, wds, mean, ref = None, third, fourth, fifth, sixth
                    else:
                        end, jc, wds, mean, ref = date(third), fourth, fifth, sixth, token
                        token = next(tokens, None)
                    services = []
                    while token == "S":
                        code, days = take(), take()
                        token = next(tokens, None)
                        if token is None or token in letters:  # no ServiceNbrHours
                            hours = None
                        else:
                            hours = int(token)
                            token = next(tokens, None)
                        services.append(service(code, int(days), hours, f"{o_loc}/Service[{len(services) + 1}]"))
                    remuns = []
                    while token == "R":
                        code, amount = take(), take()
                        token = next(tokens, None)
                        remuns.append(remun(code, int(amount), f"{o_loc}/Remun[{len(remuns) + 1}]"))
                    occupations.append(occupation(int(seq), date(start), end, jc, int(wds), int(mean), int(ref),
                                                  tuple(services), tuple(remuns), o_loc))
                contributions = []
                while token == "C":
                    code, base, amount = take(), take(), take()
                    token = next(tokens, None)
                    contributions.append(contribution(code, int(base), int(amount),
                                                      f"{w_loc}/Contribution[{len(contributions) + 1}]"))
                records.append(worker_record(worker_code, tuple(occupations), tuple(contributions), w_loc))
            persons.append(natural_person(sequence, inss, tuple(records), p_loc))
        if token is not None:  # cannot happen after the XSD: a belt to the braces
            raise ValueError(f"the DmfA's persons read as text stop at {token!r}")
        return tuple(persons)
    except StopIteration:  # cannot happen after the XSD: a belt to the braces
        raise ValueError("the DmfA's persons read as text end inside an element") from None


def _dmfa(root: etree._Element) -> m.DmfA:
    r = _Reader(ns.DMFA)
    return m.DmfA(
        header=r.header(root), employer=r.employer(root), quarter=m.Quarter.parse(r.text(root, "Quarter").strip()),
        declaration_type=r.text(root, "DeclarationType"), replaces=_i(r.text(root, "ReplacesDeclarationId")),
        net_owed_amount=int(r.text(root, "NetOwedAmount")), persons=_persons(_persons_text(root)))


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
