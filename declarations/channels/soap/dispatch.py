"""The five operations: each one call into the services, its answer wrapped for the Body.

The signed documents are embedded in the response byte for byte as they were
signed (or stored): exclusive canonicalization makes them verify inside the
envelope as they do alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from declarations import ns
from declarations.bootstrap import App
from declarations.channels.soap.edge import LOOKUP_NS, SERVICE_NS, Request
from declarations.channels.soap.faults import SOAP_ENV
from declarations.services import lookup
from declarations.xmlio.results import add_text, xml_datetime

_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")


@dataclass(frozen=True)
class Answer:
    body: bytes      # the whole response envelope
    status: str      # for the metrics: ACCEPTED | ACCEPTED_WITH_WARNINGS | REFUSED | OK


def _bare(document: bytes) -> bytes:
    return _XML_DECLARATION.sub(b"", document, count=1)


def envelope(operation: str, inner: bytes) -> bytes:
    return (b"<?xml version='1.0' encoding='UTF-8'?>\n"
            b'<soapenv:Envelope xmlns:soapenv="' + SOAP_ENV.encode() + b'"><soapenv:Body>'
            b'<svc:' + operation.encode() + b'Response xmlns:svc="' + SERVICE_NS.encode() + b'">'
            + _bare(inner) +
            b'</svc:' + operation.encode() + b'Response></soapenv:Body></soapenv:Envelope>')


def _signed_bytes(app: App, element: etree._Element) -> bytes:
    return etree.tostring(app.signer.sign(element), encoding="UTF-8")


def _sub(parent: etree._Element, name: str, value, namespace: str = LOOKUP_NS) -> None:
    add_text(parent, name, value, namespace)


def refusal(app: App, refused: lookup.Refused) -> bytes:
    root = etree.Element(f"{{{LOOKUP_NS}}}Refusal", nsmap={None: LOOKUP_NS})
    _sub(root, "SenderId", refused.sender_id)
    _sub(root, "MessageId", refused.message_id)
    _sub(root, "Code", refused.code)
    _sub(root, "Message", refused.message)
    return _signed_bytes(app, root)


def prefill_result(app: App, answer: lookup.PrefillAnswer) -> bytes:
    root = etree.Element(f"{{{LOOKUP_NS}}}PrefillResult", nsmap={None: LOOKUP_NS, "res": ns.RESULT})
    _sub(root, "SenderId", answer.sender_id)
    _sub(root, "MessageId", answer.message_id)
    _sub(root, "Employer", answer.employer)
    _sub(root, "INSS", answer.inss)
    _sub(root, "EventDate", answer.event_date.isoformat())
    _sub(root, "ComputedAt", xml_datetime(answer.computed_at))
    if answer.reference is not None:
        reference = etree.SubElement(root, f"{{{ns.RESULT}}}ReferenceData")
        for attribute, element in answer.reference.FIELDS:
            _sub(reference, element, getattr(answer.reference, attribute), ns.RESULT)
    return _signed_bytes(app, root)


def submit(app: App, request: Request) -> Answer:
    payload = request.payload
    # The declaration as its own document: the element taken out of the envelope.
    data = etree.tostring(payload, with_tail=False)
    receipt = app.ingest.submit(data, channel="REALTIME", element=payload)
    return Answer(envelope(request.operation, receipt.result_bytes), receipt.outcome.status)


def get_declaration_result(app: App, request: Request) -> Answer:
    try:
        stored = lookup.declaration_result(app.engine, app.settings, request.payload)
    except lookup.Refused as refused:
        return Answer(envelope(request.operation, refusal(app, refused)), "REFUSED")
    return Answer(envelope(request.operation, stored), "OK")


def prefill(app: App, request: Request) -> Answer:
    try:
        answer = lookup.prefill(app.engine, app.settings, request.payload)
    except lookup.Refused as refused:
        return Answer(envelope(request.operation, refusal(app, refused)), "REFUSED")
    return Answer(envelope(request.operation, prefill_result(app, answer)), "OK")


HANDLERS = {
    "SubmitDimona": submit,
    "SubmitDmfA": submit,
    "SubmitSocialRisk": submit,
    "GetDeclarationResult": get_declaration_result,
    "Prefill": prefill,
}


def dispatch(app: App, request: Request) -> Answer:
    return HANDLERS[request.operation](app, request)
