"""DeclarationResult / DeclarationResults documents (urn:declarations:result:v1)."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from lxml import etree

from declarations import ns
from declarations.domain.anomalies import Anomaly, Severity
from declarations.domain.outcome import Outcome

R = ns.RESULT


def add_text(parent: etree._Element, name: str, value, namespace: str = R) -> etree._Element | None:
    """Append ``<name>value</name>`` in ``namespace``; nothing for None (optional elements)."""
    if value is None:
        return None
    child = etree.SubElement(parent, f"{{{namespace}}}{name}")
    child.text = str(value)
    return child


def xml_datetime(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds") if moment.microsecond else moment.isoformat(timespec="seconds")


def result_element(outcome: Outcome) -> etree._Element:
    root = etree.Element(f"{{{R}}}DeclarationResult", nsmap={None: R})
    add_text(root, "DeclarationId", outcome.declaration_id)
    add_text(root, "MessageId", outcome.message_id)
    add_text(root, "SenderId", outcome.sender_id)
    add_text(root, "Kind", outcome.kind)
    add_text(root, "Environment", outcome.environment)
    add_text(root, "Status", outcome.status)
    add_text(root, "ReceivedAt", xml_datetime(outcome.received_at))
    add_text(root, "PeriodId", outcome.period_id)
    for anomaly in outcome.anomalies:
        el = etree.SubElement(root, f"{{{R}}}Anomaly")
        add_text(el, "Code", anomaly.code)
        add_text(el, "Severity", anomaly.severity.value)
        add_text(el, "Location", anomaly.location)
        add_text(el, "Message", anomaly.message)
    return root


def results_wrapper(results: Iterable[etree._Element]) -> etree._Element:
    """Several signed DeclarationResults in one unsigned DeclarationResults."""
    root = etree.Element(f"{{{R}}}DeclarationResults", nsmap={None: R})
    root.extend(results)
    return root


def read_result(root: etree._Element) -> Outcome:
    """The inverse of ``result_element``: a stored DeclarationResult as an Outcome."""
    def text(name):
        return root.findtext(f"{{{R}}}{name}")
    return Outcome(
        declaration_id=int(text("DeclarationId")),
        received_at=dt.datetime.fromisoformat(text("ReceivedAt")),
        anomalies=tuple(Anomaly(a.findtext(f"{{{R}}}Code"), Severity(a.findtext(f"{{{R}}}Severity")),
                                a.findtext(f"{{{R}}}Message"), a.findtext(f"{{{R}}}Location"))
                        for a in root.iterchildren(f"{{{R}}}Anomaly")),
        message_id=text("MessageId"), sender_id=text("SenderId"), kind=text("Kind"),
        environment=text("Environment"),
        period_id=int(text("PeriodId")) if text("PeriodId") else None,
        status=text("Status"),
    )


def to_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")
