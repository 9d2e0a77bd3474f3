"""DeclarationResult / DeclarationResults documents (urn:declarations:result:v1)."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from lxml import etree

from declarations import ns
from declarations.domain.anomalies import CATALOGUE, Anomaly, Severity
from declarations.domain.outcome import Outcome
from declarations.exceptions import InputRefused
from declarations.xmlio.parsing import parse

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
    """The unsigned DeclarationResult of ``outcome``.

    Written as text and parsed once: a DmfA of 1,000 workers with no Dimona period carries 1,000 M010
    warnings, 5,000 elements, and lxml's parser makes them about three times faster than an
    ``etree.SubElement`` call each. The tree is the one ``_result_tree`` builds, so the same bytes once
    serialized (tests/unit/test_result_element_oracle.py). Where the text would not give that tree (an empty
    value, whose element ``_result_tree`` writes as a start and an end tag, not an empty element; a
    character XML cannot carry) the tree is built element by element, which keeps its behaviour, errors
    included.
    """
    text = _result_text(outcome)
    if text is not None:
        try:
            # The one hardened parser (its checks cost nothing next to the parse).
            return parse(text.encode())
        except (InputRefused, ValueError):  # (a lone surrogate does not encode)
            pass
    return _result_tree(outcome)


_SEVERITIES = frozenset(s.value for s in Severity)


def _escaped(value) -> str | None:
    """``value`` as element text, or None where the text form cannot stand for it (an empty value)."""
    text = str(value)
    if not text:
        return None
    # As lxml escapes text; a carriage return as a reference, else the parser would read it as a line feed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _result_text(outcome: Outcome) -> str | None:
    parts = [f'<DeclarationResult xmlns="{R}">']
    for name, value in (("DeclarationId", outcome.declaration_id), ("MessageId", outcome.message_id),
                        ("SenderId", outcome.sender_id), ("Kind", outcome.kind),
                        ("Environment", outcome.environment), ("Status", outcome.status),
                        ("ReceivedAt", xml_datetime(outcome.received_at)), ("PeriodId", outcome.period_id)):
        if value is not None:
            text = _escaped(value)
            if text is None:
                return None
            parts.append(f"<{name}>{text}</{name}>")
    append = parts.append
    for anomaly in outcome.anomalies:
        # Codes and severities are the catalogue's (letters and digits): nothing to escape in those.
        code, severity = anomaly.code, anomaly.severity.value
        code = code if code in CATALOGUE else _escaped(code)
        severity = severity if severity in _SEVERITIES else _escaped(severity)
        message = _escaped(anomaly.message)
        if code is None or severity is None or message is None:
            return None
        if anomaly.location is None:
            append(f"<Anomaly><Code>{code}</Code><Severity>{severity}</Severity><Message>{message}</Message>"
                   "</Anomaly>")
            continue
        location = _escaped(anomaly.location)
        if location is None:
            return None
        append(f"<Anomaly><Code>{code}</Code><Severity>{severity}</Severity><Location>{location}</Location>"
               f"<Message>{message}</Message></Anomaly>")
    append("</DeclarationResult>")
    return "".join(parts)


def _result_tree(outcome: Outcome) -> etree._Element:
    """The DeclarationResult element by element (what result_element did before it wrote text)."""
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
