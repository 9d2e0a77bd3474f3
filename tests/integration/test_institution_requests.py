"""Who asks (services/institution_requests.py): A004 before the desk, on both backends, no SOAP.

The e2e tests (tests/e2e/test_institutions_soap.py) cover the same through
zeep; here the cases that need the clock moved or are quicker in-process.
"""

from __future__ import annotations

import datetime as dt

from declarations.domain import institution_messages as m
from declarations.services import institution_requests
from declarations.xmlio import institution_xml

NOW = dt.datetime.fromisoformat("2025-11-15T10:00:00+01:00")
D = dt.date


def test_a_signed_request_of_a_registered_institution_reaches_the_desk(app, demo_signer):
    element = demo_signer("onem").sign(institution_xml.request_element(m.ListAuthorizations(m.Caller("ONEM", "a-1"))))
    answer = institution_requests.answer(app.institutions, element, NOW)
    assert isinstance(answer, m.AuthorizationList) and answer.caller == m.Caller("ONEM", "a-1")


def test_a_certificate_not_valid_now_is_A004(app, demo_signer):
    request = m.Subscribe(m.Caller("ONEM", "a-2"), "DIMONA")
    element = demo_signer("onem").sign(institution_xml.request_element(request))
    later = dt.datetime(2036, 1, 2, tzinfo=dt.timezone.utc)  # the demo certificates end on 2035-12-31
    answer = institution_requests.answer(app.institutions, element, later)
    assert isinstance(answer, m.Refused) and answer.code == "A004"
    assert "valid from 2024-01-01 to 2035-12-31" in answer.message
    # the MessageId was not spent: the same request, in time, is served
    assert isinstance(institution_requests.answer(app.institutions, element, NOW), m.SubscriptionChanged)


def test_only_the_signed_content_is_read(app, demo_signer):
    """A field added after signing is not read: the signature no longer verifies (A004), and even the
    claimed identity in the refusal is the one as received, never mixed with the signed one."""
    request = m.Consult(m.Caller("ONEM", "a-3"), "85073100130", "DIMONA", D(2025, 8, 1), D(2025, 8, 31))
    element = demo_signer("onem").sign(institution_xml.request_element(request))
    element.find(f"{{{institution_xml.INS}}}InstitutionId").text = "INAMI"
    answer = institution_requests.answer(app.institutions, element, NOW)
    assert (answer.code, answer.caller) == ("A004", m.Caller("INAMI", "a-3"))
    assert "S002" in answer.message
