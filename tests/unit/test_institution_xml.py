"""The InstitutionService's documents (xsd/institution.xsd) and their reader/writer
(xmlio/institution_xml.py).

Every request and every answer is built from typed values, signed with a real
demo key (as an institution, as the engine), and checked by both validators:
lxml (the engine's, through the schema registry) and xmlschema. Requests go
back through signature.verify and read_request to the same typed values.
"""

from __future__ import annotations

import copy
import datetime as dt
from functools import lru_cache
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from declarations import ns
from declarations.domain import institution_messages as m
from declarations.domain.directory import DirectoryAuthorization
from declarations.xmlio import institution_xml, schemas
from declarations.xmlio.signature import Signer, verify

KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "keys"
INS = ns.INSTITUTION
ONEM = m.Caller("ONEM", "onem-0001")
D = dt.date


@lru_cache(maxsize=None)
def signer(name: str) -> Signer:
    return Signer.from_files(KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem")


@lru_cache(maxsize=None)
def second_validator(filename: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(schemas.XSD_DIR / filename), allow="local")


def both_validators(element: etree._Element) -> tuple[list, list[str]]:
    """(lxml's problems, xmlschema's reasons) for the element as its own document."""
    tree = etree.ElementTree(copy.deepcopy(element))
    second = second_validator(schemas.SCHEMA_FILES[element.tag])
    return schemas.problems(element), [str(e.reason) for e in second.iter_errors(tree)]


REQUESTS = [
    m.ListAuthorizations(ONEM),
    m.RegisterPerson(ONEM, "85073100130", "UNEMPLOYED", D(2025, 1, 1), None),
    m.RegisterPerson(ONEM, "85073100130", "UNEMPLOYED", D(2025, 1, 1), D(2025, 12, 31)),
    m.UnregisterPerson(ONEM, "85073100130", "UNEMPLOYED", D(2025, 1, 1)),
    m.Consult(ONEM, "85073100130", "DIMONA", D(2025, 7, 1), D(2025, 9, 30)),
    m.Subscribe(ONEM, "DMFA"),
    m.Unsubscribe(ONEM, "DRS_UNEMPLOYMENT"),
    m.GetNotifications(ONEM, 0, 100),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_a_signed_request_is_valid_and_reads_back_from_its_signed_content(request_):
    signed = signer("onem").sign(institution_xml.request_element(request_))
    assert both_validators(signed) == ([], [])
    verified = verify(signed)
    assert verified.fingerprint == signer("onem").fingerprint
    assert institution_xml.read_request(verified.signed) == request_
    assert institution_xml.operation_of(signed) == type(request_).__name__


def test_an_unsigned_request_is_valid_so_that_it_gets_a_refusal_not_a_fault():
    unsigned = institution_xml.request_element(REQUESTS[4])
    assert both_validators(unsigned) == ([], [])
    assert institution_xml.claimed_caller(unsigned) == ONEM


def test_the_reader_reads_only_what_it_is_given_with_whitespace_collapsed_as_the_xsd_does():
    element = institution_xml.request_element(REQUESTS[4])
    element.find(f"{{{INS}}}From").text = " 2025-07-01\n"
    assert institution_xml.read_request(element).start == D(2025, 7, 1)


def _period():
    return m.EmploymentPeriodData(period_id=7, declaration_id=12, employer_noss="123456749", worker_type="OTH",
                                  joint_commission="302", start=D(2025, 7, 1), end=None, planned_hours=None)


def _quarter():
    occupation = m.OccupationData(start=D(2025, 7, 1), end=D(2025, 9, 30), joint_commission="302",
                                  working_days_system=5, mean_working_hours=3800, ref_mean_working_hours=3800,
                                  services=(m.ServiceData("001", 6572, None), m.ServiceData("020", 100, 760)),
                                  remunerations=(m.RemunerationData("001", 950000),))
    return m.QuarterData(declaration_id=13, employer_noss="123456749", year=2025, quarter=3, worker_code="495",
                         occupations=(occupation,))


def _risk(reference: bool):
    values = (412345, 10000, "302") if reference else (None, None, None)
    return m.SocialRiskData(declaration_id=14, employer_noss="123456749", scenario="UNEMP-1",
                            event_date=D(2025, 11, 14), details=(("Reason", "DISMISSAL"),
                                                                 ("NoticeStartDate", "2025-10-01")),
                            ref_quarterly_gross_remun=values[0], ref_working_time_fraction=values[1],
                            ref_joint_commission=values[2], reference_source="DERIVED" if reference else "NONE")


GRANTED = (m.GrantedWindow(D(2025, 7, 1), D(2025, 9, 30), "UNEMPLOYED"),)

ANSWERS = [
    m.Refused(ONEM, "A002", "ONEM holds person 85073100130 in no capacity authorized for DIMONA"),
    m.Refused(None, "A004", "the request is not signed"),
    m.AuthorizationList(ONEM, (DirectoryAuthorization("ONEM", "UNEMPLOYED", "DIMONA"),
                               DirectoryAuthorization("INAMI", "INSURED", "DRS_HEALTH"))),
    m.AuthorizationList(ONEM, ()),
    m.RegisterChanged(ONEM, "REGISTERED", "85073100130", "UNEMPLOYED", D(2025, 1, 1), None),
    m.RegisterChanged(ONEM, "UNREGISTERED", "85073100130", "UNEMPLOYED", D(2025, 1, 1), D(2025, 12, 31)),
    m.SubscriptionChanged(ONEM, "SUBSCRIBED", "DIMONA"),
    m.ConsultResult(ONEM, "85073100130", "DIMONA", D(2025, 1, 1), D(2025, 12, 31), GRANTED, periods=(_period(),)),
    m.ConsultResult(ONEM, "85073100130", "DMFA", D(2025, 1, 1), D(2025, 12, 31), GRANTED, quarters=(_quarter(),)),
    m.ConsultResult(ONEM, "85073100130", "DRS_UNEMPLOYMENT", D(2025, 1, 1), D(2025, 12, 31), GRANTED,
                    social_risks=(_risk(True), _risk(False))),
    m.ConsultResult(ONEM, "85073100130", "DIMONA", D(2025, 1, 1), D(2025, 12, 31), GRANTED),
    m.NotificationBatch(ONEM, 0, (m.Notification(1, "85073100130", "DIMONA", 12, "NEW", D(2025, 7, 1), None),
                                  m.Notification(2, "85073100130", "DMFA", 13, "REPLACED", D(2025, 7, 1),
                                                 D(2025, 9, 30))), 2),
    m.NotificationBatch(ONEM, 2, (), 2),
]


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: type(a).__name__)
def test_every_answer_signed_by_the_engine_is_valid_for_both_validators(answer):
    element = institution_xml.answer_element(answer)
    assert element.nsmap == {None: INS}
    signed = signer("sender-1001").sign(element)  # RSA here; the institution keys (EC) sign the requests
    assert both_validators(signed) == ([], [])
    assert verify(signed).fingerprint == signer("sender-1001").fingerprint


def test_the_consult_result_carries_the_typed_data():
    element = institution_xml.answer_element(ANSWERS[8])
    q = f"{{{INS}}}"
    quarter = element.find(f"{q}Quarter")
    assert quarter.findtext(f"{q}QuarterNbr") == "3" and quarter.findtext(f"{q}WorkerCode") == "495"
    services = quarter.findall(f"{q}Occupation/{q}Service")
    assert [(s.findtext(f"{q}Code"), s.findtext(f"{q}Hours")) for s in services] == [("001", None), ("020", "760")]
    assert element.findtext(f"{q}Quarter/{q}Occupation/{q}Remuneration/{q}Amount") == "950000"
    risks = institution_xml.answer_element(ANSWERS[9]).findall(f"{q}SocialRisk")
    assert [r.find(f"{q}ReferenceData") is not None for r in risks] == [True, False]
    assert [r.findtext(f"{q}ReferenceSource") for r in risks] == ["DERIVED", "NONE"]


def test_a_refusal_without_a_caller_names_none():
    element = institution_xml.answer_element(ANSWERS[1])
    assert [etree.QName(c).localname for c in element] == ["Code", "Message"]


@pytest.mark.parametrize("mutate, fragment", [
    (lambda e: e.find(f"{{{INS}}}Code").__setattr__("text", "A007"), "A00[1-6]"),
    (lambda e: e.find(f"{{{INS}}}Code").__setattr__("text", "S001"), "A00[1-6]"),
], ids=["code-A007", "code-S001"])
def test_a_refusal_code_outside_A001_A006_is_invalid(mutate, fragment):
    element = institution_xml.answer_element(ANSWERS[0])
    mutate(element)
    signed = signer("sender-1001").sign(element)
    lxml_problems, second = both_validators(signed)
    assert lxml_problems and second
    assert fragment in lxml_problems[0].message


@pytest.mark.parametrize("change", ["window-without-To", "max-0", "max-1001", "data-type-DRS", "capacity-lowercase",
                                    "signature-not-last"])
def test_an_invalid_request_is_refused_by_both_validators(change):
    q = f"{{{INS}}}"
    if change == "window-without-To":
        element = institution_xml.request_element(REQUESTS[4])
        element.remove(element.find(f"{q}To"))
    elif change.startswith("max-"):
        element = institution_xml.request_element(m.GetNotifications(ONEM, 0, int(change[4:])))
    elif change == "data-type-DRS":
        element = institution_xml.request_element(m.Subscribe(ONEM, "DRS"))
    elif change == "capacity-lowercase":
        element = institution_xml.request_element(
            m.RegisterPerson(ONEM, "85073100130", "unemployed", D(2025, 1, 1), None))
    else:
        element = signer("onem").sign(institution_xml.request_element(REQUESTS[5]))
        etree.SubElement(element, f"{q}DataType").text = "DMFA"
    lxml_problems, second = both_validators(element)
    assert lxml_problems and second


def test_the_service_wrappers_carry_the_signed_request_strictly():
    svc = ns.INSTITUTION_SERVICE
    signed = signer("onem").sign(institution_xml.request_element(REQUESTS[4]))
    wrapper = etree.Element(f"{{{svc}}}Consult", nsmap={"isv": svc})
    wrapper.append(signed)
    assert both_validators(wrapper) == ([], [])
    # strict: an invalid request inside is the wrapper's problem too
    signed.find(f"{{{INS}}}DataType").text = "PAYSLIP"
    lxml_problems, second = both_validators(wrapper)
    assert lxml_problems and second
    # and a request of another namespace is not one
    other = etree.Element(f"{{{svc}}}Consult")
    etree.SubElement(other, f"{{{ns.LOOKUP}}}PrefillRequest")
    assert both_validators(other)[0]
