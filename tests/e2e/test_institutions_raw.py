"""InstitutionService by raw HTTP: the contract as served, and what is a fault there.

The edge is the DeclarationService's (test_soap_raw.py checks every row of
its fault table); here only what is the InstitutionService's own: its WSDL
and schemas as committed, its wrappers, and that a refusal travels as a
signed answer while a request that is not one of this service is a fault.
"""

from __future__ import annotations

import datetime as dt
import http.client
import re
from pathlib import Path

import pytest
from lxml import etree

from declarations import ns
from declarations.channels.soap.harness import Server
from declarations.channels.soap.institutions import DESCRIPTOR
from declarations.channels.soap.wsgi import wsdl_for
from declarations.domain import institution_messages as m
from declarations.xmlio import institution_xml, parsing
from declarations.xmlio.signature import Signer, verify

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "fixtures" / "demo" / "keys"
NOW = "2025-11-15T10:00:00+01:00"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
ISV = ns.INSTITUTION_SERVICE
INS = ns.INSTITUTION
PATH = "/soap/institutions"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("institutions-raw"), now=NOW) as running:
        yield running


def post(server, body: bytes, path: str = PATH) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def get(server, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def envelope(operation: str, inner: bytes, namespace: str = ISV) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="' + SOAP.encode() + b'">'
            b'<soapenv:Body><isv:' + operation.encode() + b' xmlns:isv="' + namespace.encode() + b'">' + inner
            + b'</isv:' + operation.encode() + b'></soapenv:Body></soapenv:Envelope>')


def signed(request: m.InstitutionRequest, key: str = "onem") -> bytes:
    signer = Signer.from_files(KEYS / f"{key}.key.pem", KEYS / f"{key}.cert.pem")
    return etree.tostring(signer.sign(institution_xml.request_element(request)))


def fault(body: bytes) -> tuple[str, str]:
    element = parsing.parse(body).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert element is not None, body
    return element.findtext("faultcode"), element.findtext("faultstring")


def test_the_served_wsdl_is_the_committed_one(server):
    status, served = get(server, f"{PATH}?wsdl")
    assert status == 200
    committed = (REPO / "wsdl" / "institutions.wsdl").read_bytes()
    address = f'location="http://127.0.0.1:{server.port}{PATH}"'.encode()
    assert address in served
    assert served.replace(address, f'location="http://127.0.0.1:8080{PATH}"'.encode()) == committed
    assert served == wsdl_for(f"127.0.0.1:{server.port}", service=DESCRIPTOR)
    # and the DeclarationService's is still its own
    assert b"DeclarationService" in get(server, "/soap/declarations?wsdl")[1]


def test_the_imported_schemas_are_served_as_committed(server):
    for name in ("institution-service.xsd", "institution.xsd", "common.xsd", "xmldsig-core-schema.xsd"):
        status, body = get(server, f"/xsd/{name}")
        assert status == 200 and body == (REPO / "xsd" / name).read_bytes(), name


def test_the_committed_wsdl_loads_offline_with_its_relative_imports():
    import zeep

    client = zeep.Client(str(REPO / "wsdl" / "institutions.wsdl"))
    operations = client.wsdl.services["InstitutionService"].ports["InstitutionPort"].binding._operations
    assert len(operations) == 7


def test_a_refusal_is_a_signed_answer_not_a_fault(server):
    body = envelope("Consult", signed(m.Consult(m.Caller("ONEM", "raw-a001"), "85073100130", "DIMONA",
                                                 dt.date(2025, 1, 1),
                                                 dt.date(2025, 1, 31))))
    status, answer = post(server, body)
    assert status == 200
    refusal = parsing.parse(answer).find(f"{{{SOAP}}}Body/{{{ISV}}}ConsultResponse/{{{INS}}}Refusal")
    assert refusal is not None, answer
    assert verify(refusal).signed.findtext(f"{{{INS}}}Code") == "A001"


def test_what_is_not_a_request_of_this_service_is_a_client_fault(server):
    request = signed(m.ListAuthorizations(m.Caller("ONEM", "raw-fault")))
    # a DeclarationService operation sent here
    code, message = fault(post(server, envelope("SubmitDimona", b"", ns.SERVICE))[1])
    assert code == "soapenv:Client" and "unknown operation SubmitDimona" in message
    # the right wrapper in the DeclarationService's namespace
    code, message = fault(post(server, envelope("ListAuthorizations", request, ns.SERVICE))[1])
    assert code == "soapenv:Client" and f"expected {ISV}" in message
    # a wrapper carrying another operation's request
    code, message = fault(post(server, envelope("Consult", request))[1])
    assert code == "soapenv:Client" and "carries a signed ConsultRequest, not ListAuthorizationsRequest" in message
    # a request not valid against institution.xsd (a Max of 0)
    bad = signed(m.GetNotifications(m.Caller("ONEM", "raw-max"), 0, 0))
    status, answer = post(server, envelope("GetNotifications", bad))
    code, message = fault(answer)
    assert status == 500 and code == "soapenv:Client" and "institution-service.xsd" in message
    # and an institution request sent to the DeclarationService
    code, message = fault(post(server, envelope("ListAuthorizations", request), "/soap/declarations")[1])
    assert code == "soapenv:Client" and "unknown operation ListAuthorizations" in message


def test_metrics_count_institution_operations_by_outcome(server):
    post(server, envelope("ListAuthorizations", signed(m.ListAuthorizations(m.Caller("ONEM", "raw-metrics")))))
    post(server, envelope("ListAuthorizations", signed(m.ListAuthorizations(m.Caller("ONEM", "raw-metrics")))))
    text = get(server, "/metrics")[1].decode()
    for status in ("OK", "A005"):
        labels = ('service="institutions"', 'operation="ListAuthorizations"', f'status="{status}"')
        # the label order differs between one process and gunicorn's multi-process collection
        assert any(line.startswith("declarations_soap_requests_total{") and all(label in line for label in labels)
                   and float(line.rsplit(" ", 1)[1]) >= 1 for line in text.splitlines()), status
