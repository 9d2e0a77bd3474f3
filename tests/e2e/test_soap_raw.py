"""The SOAP edge, by raw HTTP: every wrong request gets its documented fault or status, and the server goes on.

One real ``declarations serve`` (SQLite, 2 workers, message limit 100 000
bytes) for the module. docs/soap.md lists the answers checked here.
"""

from __future__ import annotations

import datetime as dt
import http.client
import io
import itertools
import re
import socket
from pathlib import Path

import pytest
from lxml import etree

from declarations import samples
from declarations.channels.soap import faults
from declarations.channels.soap.harness import Server
from declarations.channels.soap.wsgi import SoapApplication, wsdl_for
from declarations.xmlio import parsing
from declarations.xmlio.signature import Signer

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "fixtures" / "demo" / "keys"
NOW = "2025-11-15T10:00:00+01:00"
LIMIT = 100_000
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SVC = "urn:declarations:service:v1"
RES = "urn:declarations:result:v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("soap-raw"), now=NOW,
                extra_env={"DECLARATIONS_MAX_MESSAGE_BYTES": str(LIMIT)}) as running:
        yield running


def post(server, body: bytes, *, content_type: str = "text/xml; charset=utf-8", path: str = "/soap/declarations",
         headers: dict | None = None) -> tuple[int, bytes, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type, **(headers or {})})
        answer = connection.getresponse()
        return answer.status, answer.read(), dict(answer.getheaders())
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


def envelope(inner: bytes, header: bytes = b"") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="' + SOAP.encode() + b'">'
            + header + b"<soapenv:Body>" + inner + b"</soapenv:Body></soapenv:Envelope>")


_inss = itertools.count(200)


def signed_dimona(message_id: str, inss_n: int | None = None) -> bytes:
    """A signed DimonaIn of sender 1001; a worker of its own unless told (no overlap between tests)."""
    inss_n = next(_inss) if inss_n is None else inss_n
    signer = Signer.from_files(KEYS / "sender-1001.key.pem", KEYS / "sender-1001.cert.pem")
    element = samples.dimona("In", message_id=message_id, sender_id="1001", noss="123456749",
                             INSS=samples.valid_inss(inss_n), StartingDate=dt.date(2025, 11, 16),
                             JointCommissionNbr="200", WorkerType="OTH")
    return etree.tostring(signer.sign(element))


def submit(dimona: bytes) -> bytes:
    return envelope(b'<svc:SubmitDimona xmlns:svc="' + SVC.encode() + b'">' + dimona + b"</svc:SubmitDimona>")


def fault(body: bytes) -> tuple[str, str]:
    root = parsing.parse(body)
    element = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert element is not None, body
    return element.findtext("faultcode"), element.findtext("faultstring")


def result_of(body: bytes) -> etree._Element:
    root = parsing.parse(body)
    result = root.find(f"{{{SOAP}}}Body/{{{SVC}}}SubmitDimonaResponse/{{{RES}}}DeclarationResult")
    assert result is not None, body
    return result


_alive = itertools.count()


@pytest.fixture
def still_serving(server):
    yield
    assert server.alive()
    n = next(_alive)
    status, body, _ = post(server, submit(signed_dimona(f"alive-{n}", inss_n=100 + n)))
    assert status == 200, body
    assert result_of(body).findtext(f"{{{RES}}}Status") == "ACCEPTED"


# --- the contract as served ---------------------------------------------------------------------

def test_the_served_wsdl_is_the_committed_one(server):
    status, served = get(server, "/soap/declarations?wsdl")
    assert status == 200
    committed = (REPO / "wsdl" / "declarations.wsdl").read_bytes()
    address = f'location="http://127.0.0.1:{server.port}/soap/declarations"'.encode()
    assert address in served
    assert served.replace(address, b'location="http://127.0.0.1:8080/soap/declarations"') == committed
    assert served == wsdl_for(f"127.0.0.1:{server.port}")


def test_the_imported_schemas_are_served_as_committed(server):
    for name in ("declaration-service.xsd", "lookup.xsd", "result.xsd", "common.xsd", "xmldsig-core-schema.xsd"):
        status, body = get(server, f"/xsd/{name}")
        assert status == 200 and body == (REPO / "xsd" / name).read_bytes(), name
    assert get(server, "/xsd/../setup.cfg")[0] == 404


# --- declarations: answers, not faults ------------------------------------------------------------

def test_a_valid_declaration_is_accepted(server):
    status, body, headers = post(server, submit(signed_dimona("raw-ok")))
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert result_of(body).findtext(f"{{{RES}}}Status") == "ACCEPTED"


def test_an_unsigned_or_invalid_declaration_is_a_refused_answer(server, still_serving):
    unsigned = etree.tostring(samples.dimona("In", message_id="raw-unsigned", sender_id="1001", noss="123456749",
                                             INSS=samples.valid_inss(3), StartingDate=dt.date(2025, 11, 16),
                                             JointCommissionNbr="200", WorkerType="OTH"))
    status, body, _ = post(server, submit(unsigned))
    assert status == 200
    result = result_of(body)
    assert result.findtext(f"{{{RES}}}Status") == "REFUSED"
    assert result.findtext(f"{{{RES}}}Anomaly/{{{RES}}}Code") == "S001"


# --- faults -----------------------------------------------------------------------------------------

def test_doctype_and_entity_are_a_client_fault(server, still_serving):
    body = (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY boom "boom">]>\n'
            + submit(signed_dimona("raw-doctype")).split(b"?>", 1)[1].replace(b"<svc:SubmitDimona", b"&boom;<svc:SubmitDimona", 1))
    status, answer, _ = post(server, body)
    assert status == 500
    code, message = fault(answer)
    assert code == "soapenv:Client" and "DOCTYPE" in message


def test_a_soap_12_envelope_is_a_version_mismatch(server, still_serving):
    body = submit(signed_dimona("raw-12")).replace(SOAP.encode(), b"http://www.w3.org/2003/05/soap-envelope")
    status, answer, _ = post(server, body)
    assert status == 500
    assert fault(answer)[0] == "soapenv:VersionMismatch"


def test_an_operation_in_the_wrong_namespace_is_a_client_fault(server, still_serving):
    body = submit(signed_dimona("raw-ns")).replace(b'xmlns:svc="urn:declarations:service:v1"',
                                                   b'xmlns:svc="urn:declarations:service:v2"')
    status, answer, _ = post(server, body)
    code, message = fault(answer)
    assert status == 500 and code == "soapenv:Client"
    assert "SubmitDimona is in namespace urn:declarations:service:v2" in message


def test_an_unknown_operation_is_a_client_fault(server, still_serving):
    status, answer, _ = post(server, envelope(b'<svc:DeleteEverything xmlns:svc="' + SVC.encode() + b'"/>'))
    code, message = fault(answer)
    assert status == 500 and code == "soapenv:Client" and "unknown operation DeleteEverything" in message


def test_a_body_not_valid_against_the_service_xsd_is_a_client_fault(server, still_serving):
    dmfa_in_dimona = submit(b'<DmfA xmlns="urn:declarations:dmfa:v1"/>')
    code, message = fault(post(server, dmfa_in_dimona)[1])
    assert code == "soapenv:Client" and "declaration-service.xsd" in message
    two = submit(signed_dimona("raw-two-a") + signed_dimona("raw-two-b"))
    assert fault(post(server, two)[1])[0] == "soapenv:Client"


def test_a_truncated_body_is_a_client_fault(server, still_serving):
    whole = submit(signed_dimona("raw-truncated"))
    status, answer, _ = post(server, whole[: len(whole) // 2])
    code, message = fault(answer)
    assert status == 500 and code == "soapenv:Client" and "not a readable XML document" in message


def test_a_body_shorter_than_its_content_length_is_a_client_fault(server, still_serving):
    whole = submit(signed_dimona("raw-short"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /soap/declarations HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                  + f"Content-Length: {len(whole)}\r\nConnection: close\r\n\r\n".encode() + whole[:100])
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"faultcode>soapenv:Client<" in answer


def test_an_oversized_body_is_a_client_fault_c010(server, still_serving):
    padding = b"<!--" + b"x" * LIMIT + b"-->"
    status, answer, _ = post(server, submit(signed_dimona("raw-big")) + padding)
    code, message = fault(answer)
    assert status == 413 and code == "soapenv:Client" and "C010" in message


def test_an_oversized_chunked_body_is_a_client_fault_c010(server, still_serving):
    body = submit(signed_dimona("raw-big-chunked")) + b"<!--" + b"x" * LIMIT + b"-->"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/soap/declarations", body=iter([body[i:i + 8192] for i in range(0, len(body), 8192)]),
                       headers={"Content-Type": "text/xml"}, encode_chunked=True)
    answer = connection.getresponse()
    status, data = answer.status, answer.read()
    connection.close()
    assert status == 413 and "C010" in fault(data)[1]


def test_a_mandatory_header_is_a_must_understand_fault(server, still_serving):
    header = (b'<soapenv:Header><x:Transaction xmlns:x="urn:example:tx" soapenv:mustUnderstand="1">5'
              b"</x:Transaction></soapenv:Header>")
    body = submit(signed_dimona("raw-mu")).replace(b"<soapenv:Body>", header + b"<soapenv:Body>")
    status, answer, _ = post(server, body)
    code, message = fault(answer)
    assert status == 500 and code == "soapenv:MustUnderstand" and "Transaction" in message
    # the same block, not mandatory (or for another actor): ignored
    optional = body.replace(b'soapenv:mustUnderstand="1"', b'soapenv:mustUnderstand="0"')
    assert result_of(post(server, optional)[1]).findtext(f"{{{RES}}}Status") == "ACCEPTED"


def test_a_non_soap_content_type_is_refused(server, still_serving):
    status, answer, _ = post(server, submit(signed_dimona("raw-json")), content_type="application/json")
    assert status == 415
    assert fault(answer)[0] == "soapenv:Client"


def test_wrong_paths_and_methods(server, still_serving):
    assert get(server, "/soap/nothing")[0] == 404
    assert get(server, "/")[0] == 404
    assert get(server, "/soap/declarations")[0] == 405
    assert post(server, submit(signed_dimona("raw-path")), path="/soap/other")[0] == 404


def test_an_internal_error_is_a_server_fault_without_detail():
    def broken():
        raise RuntimeError("secret detail: password=hunter2")

    captured = {}
    application = SoapApplication(broken)
    body = b"".join(application({"REQUEST_METHOD": "POST", "PATH_INFO": "/soap/declarations",
                                 "CONTENT_TYPE": "text/xml", "CONTENT_LENGTH": "3", "wsgi.input": io.BytesIO(b"<a/>")},
                                lambda status, headers: captured.update(status=status)))
    assert captured["status"].startswith("500")
    code, message = fault(body)
    assert code == "soapenv:Server" and message == faults.SERVER_MESSAGE and "secret" not in body.decode()


def test_metrics_count_requests_by_operation_and_status(server):
    post(server, submit(signed_dimona("raw-metrics")))
    status, text = get(server, "/metrics")
    assert status == 200
    text = text.decode()
    service = 'service="declarations"'
    assert re.search(r'declarations_soap_requests_total\{operation="SubmitDimona",' + service
                     + r',status="ACCEPTED"\} [1-9]', text), text
    assert re.search(r'declarations_soap_requests_total\{operation="unknown",' + service
                     + r',status="Client"\} [1-9]', text) or \
        re.search(r'declarations_soap_requests_total\{operation="SubmitDimona",' + service
                  + r',status="Client"\} [1-9]', text)
    for bucket in ("0.05", "0.1", "0.25", "0.5", "1.0", "2.0"):
        assert (f'declarations_soap_request_duration_seconds_bucket{{le="{bucket}",operation="SubmitDimona",'
                f'{service}}}') in text


def test_the_committed_wsdl_loads_offline_with_its_relative_imports():
    import zeep

    client = zeep.Client(str(REPO / "wsdl" / "declarations.wsdl"))
    operations = client.wsdl.services["DeclarationService"].ports["DeclarationPort"].binding._operations
    assert sorted(operations) == sorted(["SubmitDimona", "SubmitDmfA", "SubmitSocialRisk", "GetDeclarationResult",
                                         "Prefill"])


# --- spyne behind the edge, in process ------------------------------------------------------------

def _call(application: SoapApplication, body: bytes) -> tuple[str, bytes]:
    captured = {}
    answer = b"".join(application({"REQUEST_METHOD": "POST", "PATH_INFO": "/soap/declarations",
                                   "CONTENT_TYPE": "text/xml", "CONTENT_LENGTH": str(len(body)),
                                   "wsgi.input": io.BytesIO(body)},
                                  lambda status, headers: captured.update(status=status)))
    return captured["status"], answer


def _service_with(method):
    """DeclarationService's descriptor with a spyne service whose one operation, SubmitDimona, is ``method``."""
    import dataclasses

    from declarations.channels.soap.declaration_service import DESCRIPTOR
    from declarations.channels.soap.dispatch import EngineService, operation

    class Odd(EngineService):
        SubmitDimona = operation(method)

    return dataclasses.replace(DESCRIPTOR, spyne_service=Odd)


def _app(tmp_path):
    from declarations.bootstrap import App
    from declarations.settings import Settings

    return App(Settings.from_env({"DECLARATIONS_HOME": str(tmp_path)}))


def test_an_exception_in_an_operation_is_a_server_fault_without_detail(tmp_path):
    def SubmitDimona(ctx, declaration):  # noqa: N802,N805
        raise RuntimeError("secret detail: password=hunter2")

    application = SoapApplication(lambda: _app(tmp_path), services=(_service_with(SubmitDimona),))
    status, body = _call(application, submit(signed_dimona("spyne-boom")))
    assert status.startswith("500")
    code, message = fault(body)
    assert code == "soapenv:Server" and message == faults.SERVER_MESSAGE and b"secret" not in body


def test_a_fault_raised_in_an_operation_is_answered_as_it_is(tmp_path):
    def SubmitDimona(ctx, declaration):  # noqa: N802,N805
        raise faults.client(f"no {etree.QName(declaration).localname} today", http_status=400)

    application = SoapApplication(lambda: _app(tmp_path), services=(_service_with(SubmitDimona),))
    status, body = _call(application, submit(signed_dimona("spyne-fault")))
    assert status.startswith("400") and fault(body) == ("soapenv:Client", "no Dimona today")


def test_an_operation_that_answers_nothing_usable_is_a_server_fault(tmp_path):
    def SubmitDimona(ctx, declaration):  # noqa: N802,N805
        return "<not-an-answer/>"

    application = SoapApplication(lambda: _app(tmp_path), services=(_service_with(SubmitDimona),))
    status, body = _call(application, submit(signed_dimona("spyne-nothing")))
    assert status.startswith("500") and fault(body) == ("soapenv:Server", faults.SERVER_MESSAGE)


def test_spyne_gets_the_edges_tree_and_the_operation_its_element(tmp_path):
    from declarations.channels.soap.descriptor import Answer

    seen = {}

    def SubmitDimona(ctx, declaration):  # noqa: N802,N805
        seen["element"] = declaration
        return Answer(b"<x:Echo xmlns:x='urn:example:echo'>" + etree.QName(declaration).localname.encode()
                      + b"</x:Echo>", "OK")

    application = SoapApplication(lambda: _app(tmp_path), services=(_service_with(SubmitDimona),))
    status, body = _call(application, submit(signed_dimona("spyne-echo")))
    assert status.startswith("200")
    # the element handed over is the one in the parsed envelope (no copy), and the answer is inserted verbatim
    assert etree.QName(seen["element"].getparent()).localname == "SubmitDimona"
    assert b"<svc:SubmitDimonaResponse xmlns:svc=\"urn:declarations:service:v1\"><x:Echo xmlns:x='urn:example:echo'>" \
           b"Dimona</x:Echo></svc:SubmitDimonaResponse>" in body
    # only the descriptor's operations exist: SubmitDmfA is now unknown to the edge
    dmfa = envelope(b'<svc:SubmitDmfA xmlns:svc="' + SVC.encode() + b'"><DmfA xmlns="urn:declarations:dmfa:v1"/>'
                    b"</svc:SubmitDmfA>")
    code, message = fault(_call(application, dmfa)[1])
    assert code == "soapenv:Client" and "unknown operation SubmitDmfA" in message
