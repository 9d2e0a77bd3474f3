"""DeclarationService through zeep, a real SOAP client built from the served WSDL.

One real ``declarations serve`` (gunicorn, 2 workers) per backend for the
whole module: SQLite in a temporary home, and PostgreSQL (a database on the
session's throwaway cluster). Clock fixed at 2025-11-15T10:00+01:00, demo
directory loaded, demo keys.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import zeep
from lxml import etree
from zeep.plugins import HistoryPlugin

from declarations import samples
from declarations.channels.soap.harness import Server
from declarations.xmlio.signature import Signer, fingerprint, verify

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "fixtures" / "demo" / "keys"
NOW = "2025-11-15T10:00:00+01:00"
SVC = "urn:declarations:service:v1"
LK = "urn:declarations:lookup:v1"
RES = "urn:declarations:result:v1"
EMPLOYER, ENTERPRISE, WORKER = "123456749", "0403179609", "85073100130"
Q3_START = dt.date(2025, 7, 1)


def signer(name: str) -> Signer:
    return Signer.from_files(KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory):
    url = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        url = pg.create_database(pg.unique_name("soap"))
    with Server(tmp_path_factory.mktemp(f"soap-{request.param}"), now=NOW, database_url=url) as running:
        running.backend = request.param
        yield running


@pytest.fixture(scope="module")
def client(server):
    history = HistoryPlugin()
    soap = zeep.Client(f"{server.url}?wsdl", plugins=[history])
    soap.history = history
    return soap


@pytest.fixture(scope="module")
def engine_fingerprint(server):
    from cryptography import x509
    return fingerprint(x509.load_pem_x509_certificate((server.home / "engine-cert.pem").read_bytes()))


def answer_element(client, local: str) -> etree._Element:
    """The signed element of the last answer, taken out of the envelope zeep received."""
    envelope = client.history.last_received["envelope"]
    found = [e for e in envelope.iter() if isinstance(e.tag, str) and etree.QName(e).localname == local]
    assert len(found) == 1, etree.tostring(envelope)
    return found[0]


def verified_by_engine(element: etree._Element, engine_fingerprint: str) -> etree._Element:
    verified = verify(element)
    assert verified.fingerprint == engine_fingerprint
    return verified.signed


def head(tag: str, sender: str = "1001", noss: str = EMPLOYER, enterprise: str | None = ENTERPRISE) -> dict:
    return dict(message_id=f"{tag}", sender_id=sender, noss=noss, enterprise_nbr=enterprise,
                created=dt.datetime(2025, 11, 15, 9, 0, tzinfo=dt.timezone.utc))


def request_element(local: str, fields: list[tuple[str, str]]) -> etree._Element:
    root = etree.Element(f"{{{LK}}}{local}", nsmap={None: LK})
    for name, value in fields:
        etree.SubElement(root, f"{{{LK}}}{name}").text = value
    return root


@pytest.fixture(scope="module")
def submitted(server, client, engine_fingerprint):
    """The demo story over SOAP: a hire, last quarter's DmfA, a sickness declaration (ReferenceData derived)."""
    sender = signer("sender-1001")
    results = {}
    hire = samples.dimona("In", **head("zeep-in"), INSS=WORKER, StartingDate=Q3_START, JointCommissionNbr="302",
                          WorkerType="OTH")
    client.service.SubmitDimona(_value_1=sender.sign(hire))
    results["dimona"] = verified_by_engine(answer_element(client, "DeclarationResult"), engine_fingerprint)
    dmfa = samples.dmfa(**head("zeep-dmfa"), quarter="20253", workers=[
        samples.worker(WORKER, sequence=1, worker_code="495", occupations=[samples.occupation(
            start=Q3_START, jc="302", mean=3800, ref=3800, services=[("001", 6572)], remuns=[("001", 950000)])])])
    client.service.SubmitDmfA(_value_1=sender.sign(dmfa))
    results["dmfa"] = verified_by_engine(answer_element(client, "DeclarationResult"), engine_fingerprint)
    sick = samples.social_risk("Incapacity", **head("zeep-sick"), inss=WORKER, event_date=dt.date(2025, 11, 14),
                               LastDayWorked=dt.date(2025, 11, 13))
    zeep_answer = client.service.SubmitSocialRisk(_value_1=sender.sign(sick))
    results["drs"] = verified_by_engine(answer_element(client, "DeclarationResult"), engine_fingerprint)
    results["drs_zeep"] = zeep_answer
    return results


def status(result: etree._Element) -> str:
    return result.findtext(f"{{{RES}}}Status")


def test_each_kind_gets_its_signed_result(submitted):
    for kind, expected in (("dimona", "DIMONA"), ("dmfa", "DMFA"), ("drs", "DRS")):
        result = submitted[kind]
        assert result.findtext(f"{{{RES}}}Kind") == expected
        assert status(result) in ("ACCEPTED", "ACCEPTED_WITH_WARNINGS"), etree.tostring(result)
    # zeep reads the same answer as typed values
    assert submitted["drs_zeep"].Kind == "DRS"
    assert submitted["drs_zeep"].DeclarationId == int(submitted["drs"].findtext(f"{{{RES}}}DeclarationId"))


def test_a_refused_declaration_is_a_normal_answer(client, engine_fingerprint):
    bad = samples.dimona("In", **head("zeep-bad"), INSS="85073100131", StartingDate=dt.date(2025, 11, 16),
                         JointCommissionNbr="302", WorkerType="OTH")
    answer = client.service.SubmitDimona(_value_1=signer("sender-1001").sign(bad))
    assert answer.Status == "REFUSED"
    assert [a.Code for a in answer.Anomaly] == ["C001"]
    verified_by_engine(answer_element(client, "DeclarationResult"), engine_fingerprint)


def test_the_same_message_again_is_a_safe_retry(client, submitted):
    hire = samples.dimona("In", **head("zeep-in"), INSS=WORKER, StartingDate=Q3_START, JointCommissionNbr="302",
                          WorkerType="OTH")
    answer = client.service.SubmitDimona(_value_1=signer("sender-1001").sign(hire))
    assert answer.DeclarationId == int(submitted["dimona"].findtext(f"{{{RES}}}DeclarationId"))


def get_result(client, sender_name: str, sender_id: str, **which) -> etree._Element:
    fields = [("SenderId", sender_id), ("MessageId", f"get-{sender_name}-{len(which)}")]
    fields += [("DeclarationId", str(which["declaration_id"]))] if "declaration_id" in which else \
        [("DeclarationMessageId", which["message_id"])]
    request = signer(sender_name).sign(request_element("DeclarationResultRequest", fields))
    client.service.GetDeclarationResult(_value_1=request)
    body = client.history.last_received["envelope"].find(".//{%s}GetDeclarationResultResponse" % SVC)
    assert body is not None and len(body) == 1
    return body[0]


def test_get_declaration_result_to_its_sender(client, submitted, engine_fingerprint):
    declaration_id = submitted["dmfa"].findtext(f"{{{RES}}}DeclarationId")
    by_id = get_result(client, "sender-1001", "1001", declaration_id=declaration_id)
    assert etree.QName(by_id).localname == "DeclarationResult", etree.tostring(by_id)
    assert verified_by_engine(by_id, engine_fingerprint).findtext(f"{{{RES}}}DeclarationId") == declaration_id
    by_message = get_result(client, "sender-1001", "1001", message_id="zeep-dmfa")
    assert verified_by_engine(by_message, engine_fingerprint).findtext(f"{{{RES}}}DeclarationId") == declaration_id


def test_get_declaration_result_refuses_other_senders(client, submitted, engine_fingerprint):
    declaration_id = submitted["dmfa"].findtext(f"{{{RES}}}DeclarationId")
    other = get_result(client, "sender-2001", "2001", declaration_id=declaration_id)
    assert etree.QName(other).localname == "Refusal"
    assert verified_by_engine(other, engine_fingerprint).findtext(f"{{{LK}}}Code") == "NOT_FOUND"
    by_message = get_result(client, "sender-2001", "2001", message_id="zeep-dmfa")
    assert by_message.findtext(f"{{{LK}}}Code") == "NOT_FOUND"
    # signed with another key while claiming to be 1001: S003
    stranger = get_result(client, "stranger", "1001", declaration_id=declaration_id)
    assert stranger.findtext(f"{{{LK}}}Code") == "S003"


def prefill(client, sender_name: str, sender_id: str, employer: str, inss: str = WORKER,
            event_date: str = "2025-11-14") -> etree._Element:
    request = signer(sender_name).sign(request_element("PrefillRequest", [
        ("SenderId", sender_id), ("MessageId", f"prefill-{sender_name}"), ("Employer", employer), ("INSS", inss),
        ("EventDate", event_date)]))
    client.service.Prefill(_value_1=request)
    body = client.history.last_received["envelope"].find(".//{%s}PrefillResponse" % SVC)
    assert body is not None and len(body) == 1
    return body[0]


def test_prefill_gives_the_reference_data_the_engine_derives(client, submitted, engine_fingerprint):
    answer = prefill(client, "sender-1001", "1001", EMPLOYER)
    assert etree.QName(answer).localname == "PrefillResult"
    signed = verified_by_engine(answer, engine_fingerprint)
    reference = signed.find(f"{{{RES}}}ReferenceData")
    assert reference is not None
    assert reference.findtext(f"{{{RES}}}QuarterlyGrossRemun") == "950000"
    assert reference.findtext(f"{{{RES}}}WorkingTimeFraction") == "10000"
    assert reference.findtext(f"{{{RES}}}JointCommissionNbr") == "302"


def test_prefill_only_to_a_sender_that_may_declare_social_risks(client, submitted, engine_fingerprint):
    refused = prefill(client, "sender-2001", "2001", EMPLOYER)  # no mandate from 123456749
    assert etree.QName(refused).localname == "Refusal"
    assert verified_by_engine(refused, engine_fingerprint).findtext(f"{{{LK}}}Code") == "S005"
    dimona_only = prefill(client, "sender-2001", "2001", "009988768")  # a Dimona-only mandate
    assert dimona_only.findtext(f"{{{LK}}}Code") == "S005"
    allowed = prefill(client, "sender-2001", "2001", "555123433")  # a DRS mandate; nothing to derive there
    assert etree.QName(allowed).localname == "PrefillResult"
    assert verified_by_engine(allowed, engine_fingerprint).find(f"{{{RES}}}ReferenceData") is None


_POSTER = r"""
import http.client, sys, time
port, path, start = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
body = open(path, "rb").read()
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
connection.connect()
while time.time() < start:
    time.sleep(0.0005)
connection.request("POST", "/soap/declarations", body=body, headers={"Content-Type": "text/xml"})
answer = connection.getresponse()
sys.stdout.buffer.write(answer.read())
"""


def test_two_processes_submit_the_same_message_at_once_one_is_stored(server, tmp_path):
    import subprocess
    import sys
    import time

    from sqlalchemy import func, select

    from declarations.settings import Settings
    from declarations.store import tables
    from declarations.store.database import make_engine

    hire = samples.dimona("In", **head("zeep-race"), INSS=samples.valid_inss(42), StartingDate=dt.date(2025, 11, 17),
                          JointCommissionNbr="302", WorkerType="OTH")
    body = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            b'<svc:SubmitDimona xmlns:svc="urn:declarations:service:v1">'
            + etree.tostring(signer("sender-1001").sign(hire)) + b"</svc:SubmitDimona></soapenv:Body></soapenv:Envelope>")
    path = tmp_path / "race.xml"
    path.write_bytes(body)
    start = time.time() + 1.0
    posters = [subprocess.Popen([sys.executable, "-c", _POSTER, str(server.port), str(path), repr(start)],
                                stdout=subprocess.PIPE) for _ in range(2)]
    answers = [p.communicate(timeout=60)[0] for p in posters]
    ids = set()
    for answer in answers:
        assert b"<Status>ACCEPTED</Status>" in answer, answer[:500]
        ids.add(re.search(rb"<DeclarationId>(\d+)</DeclarationId>", answer).group(1))
    assert len(ids) == 1
    engine = make_engine(Settings.from_env(server.env).database_url)
    try:
        with engine.connect() as connection:
            d = tables.declaration
            stored = connection.execute(select(func.count()).select_from(d).where(
                d.c.sender_id == "1001", d.c.message_id == "zeep-race")).scalar_one()
    finally:
        engine.dispose()
    assert stored == 1
