"""InstitutionService (institutions.md) at /soap/institutions: its seven operations.

Each operation's wrapper (urn:declarations:institution-service:v1) carries one
signed request of urn:declarations:institution:v1, validated at the edge
against the committed xsd/institution-service.xsd (and institution.xsd).
The handler is the same for all seven: authenticate and decide
(services/institution_requests.py, then the desk), write the typed answer
(xmlio/institution_xml.py), sign it with the engine's key, and put it into
the operation's response wrapper byte for byte as signed. A refusal
(A001-A006) is such an answer, never a fault.
"""

from __future__ import annotations

import re

from lxml import etree

from declarations import ns
from declarations.bootstrap import App
from declarations.channels.soap.dispatch import Answer
from declarations.channels.soap.edge import Contract, Request
from declarations.channels.soap.faults import SOAP_ENV
from declarations.domain import institution_messages as m
from declarations.services import institution_requests
from declarations.xmlio import institution_xml

PATH = "/soap/institutions"
WSDL_NAME = "institutions.wsdl"
WRAPPER_NS = ns.INSTITUTION_SERVICE
SCHEMA_NAME = "institution-service.xsd"
# Operation -> the signed request its wrapper must carry.
REQUEST_ELEMENT = dict(institution_xml.REQUEST_OF_OPERATION)
OPERATIONS = tuple(REQUEST_ELEMENT)
CONTRACT = Contract(WRAPPER_NS, OPERATIONS, {op: ns.qn(ns.INSTITUTION, el) for op, el in REQUEST_ELEMENT.items()},
                    SCHEMA_NAME)

_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")


def signed_answer(app: App, answer: m.InstitutionAnswer) -> bytes:
    """The answer's document signed by the engine, serialized once (no XML declaration: it goes into a Body)."""
    signed = app.signer.sign(institution_xml.answer_element(answer))
    return _XML_DECLARATION.sub(b"", etree.tostring(signed, encoding="UTF-8"), count=1)


def envelope(operation: str, inner: bytes) -> bytes:
    return (b"<?xml version='1.0' encoding='UTF-8'?>\n"
            b'<soapenv:Envelope xmlns:soapenv="' + SOAP_ENV.encode() + b'"><soapenv:Body>'
            b'<isv:' + operation.encode() + b'Response xmlns:isv="' + WRAPPER_NS.encode() + b'">'
            + inner +
            b'</isv:' + operation.encode() + b'Response></soapenv:Body></soapenv:Envelope>')


def respond(app: App, payload: etree._Element) -> tuple[m.InstitutionAnswer, bytes]:
    """The typed answer to one signed request element, and its signed document."""
    answer = institution_requests.answer(app.institutions, payload, app.settings.now())
    return answer, signed_answer(app, answer)


def status_of(answer: m.InstitutionAnswer) -> str:
    """For the metrics: OK, or the refusal's code (A001-A006)."""
    return answer.code if isinstance(answer, m.Refused) else "OK"


def dispatch(app: App, request: Request) -> Answer:
    answer, signed = respond(app, request.payload)
    return Answer(envelope(request.operation, signed), status_of(answer))
