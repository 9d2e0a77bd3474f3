"""SOAP 1.1 faults: what a caller gets when the request is not a message of this service.

``Client``: the caller's mistake (not SOAP, not this service, body unreadable,
too large). ``MustUnderstand``: a mandatory header this service does not
know. ``VersionMismatch``: an Envelope that is not SOAP 1.1. ``Server``: an
internal error, with no internal detail.
"""

from __future__ import annotations

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


class Fault(Exception):
    def __init__(self, code: str, message: str, *, http_status: int = 500):
        super().__init__(message)
        self.code = code          # Client | Server | MustUnderstand | VersionMismatch
        self.message = message
        self.http_status = http_status


def client(message: str, *, http_status: int = 500) -> Fault:
    return Fault("Client", message, http_status=http_status)


SERVER_MESSAGE = "internal error: the request was not processed; it may be retried"


def server() -> Fault:
    return Fault("Server", SERVER_MESSAGE)


def envelope(fault: Fault) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV})
    body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
    element = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    # faultcode, faultstring: unqualified children (SOAP 1.1, 4.4)
    etree.SubElement(element, "faultcode").text = f"soapenv:{fault.code}"
    etree.SubElement(element, "faultstring").text = fault.message
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")
