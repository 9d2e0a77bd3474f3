"""InstitutionService through zeep, a real SOAP client built from the served WSDL.

One real ``declarations serve`` (gunicorn, 2 workers) per backend for the
whole module: SQLite in a temporary home, and PostgreSQL. Clock fixed at
2025-11-15T10:00+01:00, demo directory and keys: ONEM, INAMI, ONVA, FEDRIS
are registered institutions, ``stranger`` is registered nowhere.

Every request is signed by the institution (demo key), every answer's
signature is checked against the engine's certificate; a refusal is a signed
Refusal in the response, never a fault. The declarations that feed the
notifications go in through the DeclarationService, as a payroll would send
them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import zeep
from cryptography import x509
from lxml import etree
from zeep.plugins import HistoryPlugin

from declarations import ns, samples
from declarations.channels.soap.harness import Server
from declarations.domain import institution_messages as m
from declarations.xmlio import institution_xml
from declarations.xmlio.signature import Signer, fingerprint, verify

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "fixtures" / "demo" / "keys"
NOW = "2025-11-15T10:00:00+01:00"
INS = ns.INSTITUTION
ISV = ns.INSTITUTION_SERVICE
RES = ns.RESULT
EMPLOYER, ENTERPRISE = "123456749", "0403179609"
D = dt.date

# Each test its own persons, so that none depends on another's register entries.
_persons = itertools.count(600)


def person() -> str:
    return samples.valid_inss(next(_persons))


@lru_cache(maxsize=None)
def signer(name: str) -> Signer:
    return Signer.from_files(KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem")


_messages = itertools.count(1)


def caller(institution_id: str) -> m.Caller:
    return m.Caller(institution_id, f"{institution_id.lower()}-{next(_messages):05d}")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory):
    url = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        url = pg.create_database(pg.unique_name("institutions"))
    with Server(tmp_path_factory.mktemp(f"institutions-{request.param}"), now=NOW, database_url=url) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    history = HistoryPlugin()
    soap = zeep.Client(f"{server.base}/soap/institutions?wsdl", plugins=[history])
    soap.history = history
    return soap


@pytest.fixture(scope="module")
def declarations_client(server):
    return zeep.Client(f"{server.url}?wsdl")


@pytest.fixture(scope="module")
def engine_fingerprint(server):
    return fingerprint(x509.load_pem_x509_certificate((server.home / "engine-cert.pem").read_bytes()))


class Answer:
    """The signed answer as received (``element``) and its verified content (``signed``)."""

    def __init__(self, element: etree._Element, engine_fingerprint: str):
        self.element = element
        verified = verify(element)
        assert verified.fingerprint == engine_fingerprint, "the answer is not signed by the engine"
        self.signed = verified.signed
        self.name = etree.QName(element).localname

    def text(self, path: str) -> str | None:
        return self.signed.findtext("/".join(f"{{{INS}}}{step}" for step in path.split("/")))

    def all(self, path: str) -> list[etree._Element]:
        return self.signed.findall("/".join(f"{{{INS}}}{step}" for step in path.split("/")))

    @property
    def code(self) -> str | None:
        assert self.name == "Refusal", etree.tostring(self.element)
        return self.text("Code")


def send(client, engine_fingerprint, operation: str, element: etree._Element) -> Answer:
    typed = getattr(client.service, operation)(_value_1=element)
    envelope = client.history.last_received["envelope"]
    body = envelope.find(f".//{{{ISV}}}{operation}Response")
    assert body is not None and len(body) == 1, etree.tostring(envelope)
    answer = Answer(body[0], engine_fingerprint)
    answer.typed = typed[answer.name]  # what zeep read from the same answer, by the WSDL's types
    return answer


def ask(client, engine_fingerprint, request: m.InstitutionRequest, key: str | None = None) -> Answer:
    """Send a typed request signed with ``key`` (default: the institution's own demo key)."""
    name = key or request.caller.institution_id.lower()
    element = signer(name).sign(institution_xml.request_element(request))
    return send(client, engine_fingerprint, type(request).__name__, element)


@pytest.fixture
def call(client, engine_fingerprint):
    return lambda request, key=None: ask(client, engine_fingerprint, request, key)


def submit(declarations_client, operation: str, element: etree._Element) -> int:
    answer = getattr(declarations_client.service, operation)(_value_1=signer("sender-1001").sign(element))
    assert answer.Status in ("ACCEPTED", "ACCEPTED_WITH_WARNINGS"), answer
    return answer.DeclarationId


def head(tag: str) -> dict:
    return dict(message_id=tag, sender_id="1001", noss=EMPLOYER, enterprise_nbr=ENTERPRISE,
                created=dt.datetime(2025, 11, 15, 9, 0, tzinfo=dt.timezone.utc))


def log_about(server, inss: str) -> str:
    done = subprocess.run([sys.executable, "-m", "declarations.channels.cli", "log", "person", inss],
                          env=server.env, capture_output=True, text=True, timeout=120, cwd=server.home)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- the contract as served -------------------------------------------------------------------------

def test_the_client_is_built_from_the_served_wsdl_with_the_seven_operations(client):
    operations = client.wsdl.services["InstitutionService"].ports["InstitutionPort"].binding._operations
    assert set(operations) == {"ListAuthorizations", "RegisterPerson", "UnregisterPerson", "Consult", "Subscribe",
                               "Unsubscribe", "GetNotifications"}


def test_list_authorizations_is_the_public_table(call):
    answer = call(m.ListAuthorizations(caller("INAMI")))
    assert answer.name == "AuthorizationList"
    table = {(a.findtext(f"{{{INS}}}InstitutionId"), a.findtext(f"{{{INS}}}Capacity"),
              a.findtext(f"{{{INS}}}DataType")) for a in answer.all("Authorization")}
    assert ("ONEM", "UNEMPLOYED", "DIMONA") in table and ("INAMI", "INSURED", "DRS_HEALTH") in table
    assert len(table) == 8
    assert answer.text("InstitutionId") == "INAMI"


# --- the story: register, subscribe, declarations arrive, Consult ----------------------------------

@pytest.fixture(scope="module")
def story(server, client, declarations_client, engine_fingerprint):
    """ONEM registers a person as UNEMPLOYED from 2025-08-01 and subscribes to DIMONA, DMFA and
    DRS_UNEMPLOYMENT; then a hire (2025-07-01, open-ended), the Q3 DmfA and an end of employment arrive."""
    def call(request, key=None):
        return ask(client, engine_fingerprint, request, key)

    inss = samples.valid_inss(590)
    out = {"inss": inss, "answers": {}}
    out["answers"]["register"] = call(m.RegisterPerson(caller("ONEM"), inss, "UNEMPLOYED", D(2025, 8, 1), None))
    after = call(m.GetNotifications(caller("ONEM"), 0, 1000)).text("LastSequence")
    out["after"] = int(after)
    for data_type in ("DIMONA", "DMFA", "DRS_UNEMPLOYMENT"):
        out["answers"][f"subscribe {data_type}"] = call(m.Subscribe(caller("ONEM"), data_type))
    hire = samples.dimona("In", **head("inst-hire"), INSS=inss, StartingDate=D(2025, 7, 1), JointCommissionNbr="302",
                          WorkerType="OTH")
    out["DIMONA"] = submit(declarations_client, "SubmitDimona", hire)
    dmfa = samples.dmfa(**head("inst-dmfa"), quarter="20253", workers=[samples.worker(inss, sequence=1, occupations=[
        samples.occupation(start=D(2025, 7, 1), jc="302", services=[("001", 6572)], remuns=[("001", 950000)])])])
    out["DMFA"] = submit(declarations_client, "SubmitDmfA", dmfa)
    end = samples.social_risk("EndOfEmployment", **head("inst-end"), inss=inss, event_date=D(2025, 11, 14),
                              Reason="DISMISSAL")
    out["DRS_UNEMPLOYMENT"] = submit(declarations_client, "SubmitSocialRisk", end)
    return out


def test_register_and_subscribe_are_answered_and_signed(story):
    register = story["answers"]["register"]
    assert register.name == "RegisterResult"
    assert (register.text("Operation"), register.text("INSS"), register.text("Capacity"), register.text("From"),
            register.text("To")) == ("REGISTERED", story["inss"], "UNEMPLOYED", "2025-08-01", None)
    for data_type in ("DIMONA", "DMFA", "DRS_UNEMPLOYMENT"):
        answer = story["answers"][f"subscribe {data_type}"]
        assert (answer.name, answer.text("Operation"), answer.text("DataType")) == (
            "SubscriptionResult", "SUBSCRIBED", data_type)


def test_the_declarations_arrive_as_notifications_in_order(story, call):
    answer = call(m.GetNotifications(caller("ONEM"), story["after"], 1000))
    assert answer.name == "Notifications"
    mine = [n for n in answer.all("Notification") if n.findtext(f"{{{INS}}}INSS") == story["inss"]]
    got = [(n.findtext(f"{{{INS}}}DataType"), int(n.findtext(f"{{{INS}}}DeclarationId")),
            n.findtext(f"{{{INS}}}Change"), n.findtext(f"{{{INS}}}From"), n.findtext(f"{{{INS}}}To")) for n in mine]
    assert got == [("DIMONA", story["DIMONA"], "NEW", "2025-07-01", None),
                   ("DMFA", story["DMFA"], "NEW", "2025-07-01", "2025-09-30"),
                   ("DRS_UNEMPLOYMENT", story["DRS_UNEMPLOYMENT"], "NEW", "2025-11-14", "2025-11-14")]
    sequences = [int(n.findtext(f"{{{INS}}}Sequence")) for n in answer.all("Notification")]
    assert sequences == list(range(story["after"] + 1, story["after"] + 1 + len(sequences)))
    assert int(answer.text("LastSequence")) == sequences[-1]
    # not confirmed: the same again; confirmed: nothing more
    again = call(m.GetNotifications(caller("ONEM"), story["after"], 1))
    assert [int(n.findtext(f"{{{INS}}}Sequence")) for n in again.all("Notification")] == sequences[:1]
    assert call(m.GetNotifications(caller("ONEM"), sequences[-1], 10)).all("Notification") == []


def test_consult_returns_exactly_the_authorized_window(story, call):
    answer = call(m.Consult(caller("ONEM"), story["inss"], "DIMONA", D(2025, 1, 1), D(2025, 12, 31)))
    assert answer.name == "ConsultResult", etree.tostring(answer.element)
    assert (answer.text("From"), answer.text("To")) == ("2025-01-01", "2025-12-31")
    granted = [(w.findtext(f"{{{INS}}}From"), w.findtext(f"{{{INS}}}To"), w.findtext(f"{{{INS}}}Capacity"))
               for w in answer.all("GrantedWindow")]
    assert granted == [("2025-08-01", "2025-12-31", "UNEMPLOYED")]
    assert [(w.From, w.To) for w in answer.typed.GrantedWindow] == [(D(2025, 8, 1), D(2025, 12, 31))]
    assert answer.typed.EmploymentPeriod[0].PeriodId > 0
    periods = answer.all("EmploymentPeriod")
    assert len(periods) == 1
    period = periods[0]
    # the hire is from 2025-07-01, open-ended: cut to the granted days on both sides
    assert period.findtext(f"{{{INS}}}StartingDate") == "2025-08-01"
    assert period.findtext(f"{{{INS}}}EndingDate") == "2025-12-31"
    assert int(period.findtext(f"{{{INS}}}DeclarationId")) == story["DIMONA"]
    assert period.findtext(f"{{{INS}}}Employer") == EMPLOYER
    assert answer.all("Quarter") == [] and answer.all("SocialRisk") == []


def test_consult_dmfa_and_social_risk_are_typed(story, call):
    dmfa = call(m.Consult(caller("ONEM"), story["inss"], "DMFA", D(2025, 7, 1), D(2025, 9, 30)))
    assert dmfa.name == "ConsultResult"
    assert [w.findtext(f"{{{INS}}}From") for w in dmfa.all("GrantedWindow")] == ["2025-08-01"]
    quarter = dmfa.all("Quarter")[0]
    assert (quarter.findtext(f"{{{INS}}}Year"), quarter.findtext(f"{{{INS}}}QuarterNbr")) == ("2025", "3")
    occupation = quarter.find(f"{{{INS}}}Occupation")
    assert occupation.findtext(f"{{{INS}}}StartingDate") == "2025-08-01"
    assert occupation.findtext(f"{{{INS}}}Remuneration/{{{INS}}}Amount") == "950000"
    risk = call(m.Consult(caller("ONEM"), story["inss"], "DRS_UNEMPLOYMENT", D(2025, 11, 1), D(2025, 11, 30)))
    found = risk.all("SocialRisk")
    assert [(r.findtext(f"{{{INS}}}Scenario"), r.findtext(f"{{{INS}}}EventDate")) for r in found] == [
        ("UNEMP-1", "2025-11-14")]
    assert ("Reason", "DISMISSAL") in [(d.findtext(f"{{{INS}}}Name"), d.findtext(f"{{{INS}}}Value"))
                                       for d in found[0].findall(f"{{{INS}}}Detail")]


def test_another_institution_without_authorization_gets_A002_and_the_log_shows_both(server, story, call):
    inss = story["inss"]
    # ONVA holds the person, but only in a capacity authorized for DMFA
    registered = call(m.RegisterPerson(caller("ONVA"), inss, "HOLIDAY_PAY_BENEFICIARY", D(2025, 1, 1), None))
    assert registered.name == "RegisterResult"
    onva = caller("ONVA")
    refused = call(m.Consult(onva, inss, "DIMONA", D(2025, 1, 1), D(2025, 12, 31)))
    assert refused.code == "A002" and refused.typed.Code == "A002"
    assert (refused.text("InstitutionId"), refused.text("MessageId")) == ("ONVA", onva.message_id)
    onem = caller("ONEM")
    assert call(m.Consult(onem, inss, "DIMONA", D(2025, 8, 1), D(2025, 8, 31))).name == "ConsultResult"
    log = log_about(server, inss)
    onva_line = [line for line in log.splitlines() if onva.message_id in line]
    onem_line = [line for line in log.splitlines() if onem.message_id in line]
    assert len(onva_line) == 1 and "A002" in onva_line[0] and "ONVA" in onva_line[0], log
    assert len(onem_line) == 1 and "GRANTED" in onem_line[0] and "ONEM" in onem_line[0], log


# --- refusals: each a signed answer with its code, each logged -------------------------------------

def test_a_person_outside_the_register_is_A001(server, call):
    inss = person()
    asked = caller("ONEM")
    assert call(m.Consult(asked, inss, "DIMONA", D(2025, 1, 1), D(2025, 12, 31))).code == "A001"
    assert asked.message_id in log_about(server, inss)


def test_a_window_outside_the_register_period_is_A003(server, call):
    inss = person()
    assert call(m.RegisterPerson(caller("ONEM"), inss, "UNEMPLOYED", D(2025, 8, 1), D(2025, 10, 31))).name == \
        "RegisterResult"
    asked = caller("ONEM")
    assert call(m.Consult(asked, inss, "DIMONA", D(2025, 1, 1), D(2025, 7, 31))).code == "A003"
    assert call(m.Consult(caller("ONEM"), inss, "DIMONA", D(2025, 11, 1), D(2025, 12, 31))).code == "A003"
    # a window that ends before it starts overlaps nothing
    assert call(m.Consult(caller("ONEM"), inss, "DIMONA", D(2025, 9, 30), D(2025, 8, 1))).code == "A003"
    assert asked.message_id in log_about(server, inss)


def test_a_capacity_or_data_type_without_authorization_is_A006(server, call):
    inss = person()
    asked = caller("ONEM")
    assert call(m.RegisterPerson(asked, inss, "INSURED", D(2025, 1, 1), None)).code == "A006"
    assert call(m.Subscribe(caller("ONEM"), "DRS_HEALTH")).code == "A006"
    assert asked.message_id in log_about(server, inss)


def test_unregister_removes_the_entry(call):
    inss = person()
    call(m.RegisterPerson(caller("ONEM"), inss, "UNEMPLOYED", D(2025, 1, 1), None))
    removed = call(m.UnregisterPerson(caller("ONEM"), inss, "UNEMPLOYED", D(2025, 1, 1)))
    assert (removed.name, removed.text("Operation")) == ("RegisterResult", "UNREGISTERED")
    assert call(m.Consult(caller("ONEM"), inss, "DIMONA", D(2025, 1, 1), D(2025, 12, 31))).code == "A001"
    unsubscribed = call(m.Unsubscribe(caller("FEDRIS"), "DMFA"))
    assert (unsubscribed.name, unsubscribed.text("Operation")) == ("SubscriptionResult", "UNSUBSCRIBED")


def _refusals_logged(server, message_id: str) -> list[str]:
    """The access-log lines of an A004 (no person is named: read the whole chain)."""
    done = subprocess.run([sys.executable, "-m", "declarations.channels.cli", "log", "verify"], env=server.env,
                          capture_output=True, text=True, timeout=120, cwd=server.home)
    assert done.returncode == 0, done.stdout + done.stderr
    from declarations.bootstrap import App
    from declarations.settings import Settings
    from declarations.store import institutions as store

    app = App(Settings.from_env(server.env))
    try:
        with app.engine.connect() as connection:
            return [f"{e.institution_id} {e.operation} {e.outcome}" for e in store.log_entries(connection)
                    if e.message_id == message_id]
    finally:
        app.close()


def test_an_unsigned_request_is_A004(server, client, engine_fingerprint):
    asked = caller("ONEM")
    unsigned = institution_xml.request_element(m.Consult(asked, person(), "DIMONA", D(2025, 1, 1), D(2025, 1, 31)))
    answer = send(client, engine_fingerprint, "Consult", unsigned)
    assert answer.code == "A004"
    assert "not signed" in answer.text("Message")
    assert _refusals_logged(server, asked.message_id) == ["ONEM Consult A004"]


def test_a_key_not_registered_for_the_institution_is_A004(server, call):
    stranger = caller("ONEM")
    assert call(m.ListAuthorizations(stranger), key="stranger").code == "A004"
    # a registered institution's key, used to speak for another institution
    impostor = caller("ONVA")
    refused = call(m.Consult(impostor, person(), "DMFA", D(2025, 1, 1), D(2025, 1, 31)), key="onem")
    assert refused.code == "A004" and "not registered for institution ONVA" in refused.text("Message")
    # an institution the directory does not know
    nobody = caller("NOBODY")
    assert call(m.Subscribe(nobody, "DIMONA"), key="onem").code == "A004"
    assert _refusals_logged(server, stranger.message_id) == ["ONEM ListAuthorizations A004"]
    assert _refusals_logged(server, nobody.message_id) == ["NOBODY Subscribe A004"]
    assert _refusals_logged(server, impostor.message_id) == ["ONVA Consult A004"]


def test_a_request_changed_after_signing_is_A004(client, engine_fingerprint):
    asked = caller("ONEM")
    signed = signer("onem").sign(institution_xml.request_element(
        m.Consult(asked, person(), "DIMONA", D(2025, 8, 1), D(2025, 8, 31))))
    signed.find(f"{{{INS}}}From").text = "2025-01-01"  # a wider window than signed
    answer = send(client, engine_fingerprint, "Consult", signed)
    assert answer.code == "A004"


def test_a_replayed_message_id_is_A005(server, call):
    inss = person()
    first = caller("ONEM")
    assert call(m.RegisterPerson(first, inss, "UNEMPLOYED", D(2025, 1, 1), None)).name == "RegisterResult"
    # the same MessageId again, signed anew, even for another operation
    replay = call(m.Consult(first, inss, "DIMONA", D(2025, 1, 1), D(2025, 1, 31)))
    assert replay.code == "A005"
    assert (replay.text("InstitutionId"), replay.text("MessageId")) == ("ONEM", first.message_id)
    # another institution may use the same MessageId
    assert call(m.ListAuthorizations(m.Caller("INAMI", first.message_id))).name == "AuthorizationList"
    lines = [line for line in log_about(server, inss).splitlines() if first.message_id in line]
    assert len(lines) == 2 and "A005" in lines[1], lines
