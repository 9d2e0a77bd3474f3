"""The InstitutionService's XML forms (xsd/institution.xsd) <-> the typed messages of
domain/institution_messages.py.

- ``read_request(element)``: a request element into its typed request. Give
  it the *signed content* (``signature.verify(...).signed``) of a request
  that was valid against the XSD: it reads what the signature covers and
  nothing else.
- ``answer_element(answer)``: a typed answer into its element, unsigned; the
  caller signs it (``app.signer.sign``) in the signature profile.
- ``request_element(request)``: the inverse of ``read_request``, unsigned: what
  an institution's client (the tests, a demo) signs and sends.
- ``claimed_caller(element)``: InstitutionId and MessageId as a request
  *claims* them, for the A004 refusal of a request that could not be
  authenticated (echoed, logged, never trusted).

Every document is written with the institution namespace as the default one
(``xmlns="urn:declarations:institution:v1"``): the engine's answers go into a
SOAP wrapper of another namespace (institution-service.xsd), so no toolkit
has a reason to rewrite their prefixes.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from declarations import ns
from declarations.domain import institution_messages as m
from declarations.xmlio.results import add_text

INS = ns.INSTITUTION

# Request element (local name) -> the operation it asks for (the SOAP operation, the wrapper's name).
OPERATION_OF_REQUEST = {
    "ListAuthorizationsRequest": "ListAuthorizations",
    "RegisterPersonRequest": "RegisterPerson",
    "UnregisterPersonRequest": "UnregisterPerson",
    "ConsultRequest": "Consult",
    "SubscribeRequest": "Subscribe",
    "UnsubscribeRequest": "Unsubscribe",
    "GetNotificationsRequest": "GetNotifications",
}
REQUEST_OF_OPERATION = {operation: request for request, operation in OPERATION_OF_REQUEST.items()}


class UnreadableRequest(ValueError):
    """Not a request of this contract (the edge's XSD check keeps these out; a guard, not a path)."""


def _q(local: str) -> str:
    return f"{{{INS}}}{local}"


# -- reading requests ------------------------------------------------------------

def _text(element: etree._Element, name: str) -> str | None:
    value = element.findtext(_q(name))
    return None if value is None else value.strip()   # xs:date and xs:int collapse whitespace: so do we


def _required(element: etree._Element, name: str) -> str:
    value = _text(element, name)
    if value is None:
        raise UnreadableRequest(f"{etree.QName(element).localname} has no {name}")
    return value


def _date(element: etree._Element, name: str) -> dt.date:
    return dt.date.fromisoformat(_required(element, name))


def _optional_date(element: etree._Element, name: str) -> dt.date | None:
    value = _text(element, name)
    return None if value is None else dt.date.fromisoformat(value)


def claimed_caller(element: etree._Element) -> m.Caller | None:
    """InstitutionId and MessageId as written in the received element: a claim, not an identity."""
    institution_id, message_id = _text(element, "InstitutionId"), _text(element, "MessageId")
    if institution_id is None or message_id is None:
        return None
    return m.Caller(institution_id, message_id)


def operation_of(element: etree._Element) -> str:
    """The SOAP operation a request element belongs to."""
    name = etree.QName(element)
    if name.namespace != INS or name.localname not in OPERATION_OF_REQUEST:
        raise UnreadableRequest(f"{name.localname} ({name.namespace or 'no namespace'}) is not an institution request")
    return OPERATION_OF_REQUEST[name.localname]


def read_request(element: etree._Element) -> m.InstitutionRequest:
    operation = operation_of(element)
    caller = m.Caller(_required(element, "InstitutionId"), _required(element, "MessageId"))
    if operation == "ListAuthorizations":
        return m.ListAuthorizations(caller)
    if operation == "RegisterPerson":
        return m.RegisterPerson(caller, _required(element, "INSS"), _required(element, "Capacity"),
                                _date(element, "From"), _optional_date(element, "To"))
    if operation == "UnregisterPerson":
        return m.UnregisterPerson(caller, _required(element, "INSS"), _required(element, "Capacity"),
                                  _date(element, "From"))
    if operation == "Consult":
        return m.Consult(caller, _required(element, "INSS"), _required(element, "DataType"),
                         _date(element, "From"), _date(element, "To"))
    if operation == "Subscribe":
        return m.Subscribe(caller, _required(element, "DataType"))
    if operation == "Unsubscribe":
        return m.Unsubscribe(caller, _required(element, "DataType"))
    return m.GetNotifications(caller, int(_required(element, "AfterSequence")), int(_required(element, "Max")))


# -- writing (helpers) -------------------------------------------------------------

def _add(parent: etree._Element, name: str, value) -> etree._Element | None:
    if isinstance(value, dt.date):
        value = value.isoformat()
    return add_text(parent, name, value, INS)


def _sub(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, _q(name))


def _root(name: str, caller: m.Caller | None) -> etree._Element:
    root = etree.Element(_q(name), nsmap={None: INS})
    if caller is not None:
        _add(root, "InstitutionId", caller.institution_id)
        _add(root, "MessageId", caller.message_id)
    return root


# -- writing requests (the client's side) --------------------------------------------

# The request's fields after InstitutionId and MessageId, in the XSD's order: (element, attribute).
_REQUEST_FIELDS = {
    m.ListAuthorizations: (),
    m.RegisterPerson: (("INSS", "inss"), ("Capacity", "capacity"), ("From", "valid_from"), ("To", "valid_to")),
    m.UnregisterPerson: (("INSS", "inss"), ("Capacity", "capacity"), ("From", "valid_from")),
    m.Consult: (("INSS", "inss"), ("DataType", "data_type"), ("From", "start"), ("To", "end")),
    m.Subscribe: (("DataType", "data_type"),),
    m.Unsubscribe: (("DataType", "data_type"),),
    m.GetNotifications: (("AfterSequence", "after_sequence"), ("Max", "max")),
}


def request_element(request: m.InstitutionRequest) -> etree._Element:
    """The request's document, unsigned (the institution signs it)."""
    operation = type(request).__name__
    root = _root(REQUEST_OF_OPERATION[operation], request.caller)
    for name, attribute in _REQUEST_FIELDS[type(request)]:
        _add(root, name, getattr(request, attribute))
    return root


# -- writing answers ---------------------------------------------------------------

def _refusal(answer: m.Refused) -> etree._Element:
    root = _root("Refusal", answer.caller)
    _add(root, "Code", answer.code)
    _add(root, "Message", answer.message)
    return root


def _authorization_list(answer: m.AuthorizationList) -> etree._Element:
    root = _root("AuthorizationList", answer.caller)
    for authorization in answer.authorizations:
        entry = _sub(root, "Authorization")
        _add(entry, "InstitutionId", authorization.institution_id)
        _add(entry, "Capacity", authorization.capacity)
        _add(entry, "DataType", authorization.data_type)
    return root


def _register_result(answer: m.RegisterChanged) -> etree._Element:
    root = _root("RegisterResult", answer.caller)
    _add(root, "Operation", answer.operation)
    _add(root, "INSS", answer.inss)
    _add(root, "Capacity", answer.capacity)
    _add(root, "From", answer.valid_from)
    _add(root, "To", answer.valid_to)
    return root


def _subscription_result(answer: m.SubscriptionChanged) -> etree._Element:
    root = _root("SubscriptionResult", answer.caller)
    _add(root, "Operation", answer.operation)
    _add(root, "DataType", answer.data_type)
    return root


def _employment_period(parent: etree._Element, period: m.EmploymentPeriodData) -> None:
    element = _sub(parent, "EmploymentPeriod")
    _add(element, "PeriodId", period.period_id)
    _add(element, "DeclarationId", period.declaration_id)
    _add(element, "Employer", period.employer_noss)
    _add(element, "WorkerType", period.worker_type)
    _add(element, "JointCommissionNbr", period.joint_commission)
    _add(element, "StartingDate", period.start)
    _add(element, "EndingDate", period.end)
    _add(element, "PlannedHoursNbr", period.planned_hours)


def _quarter(parent: etree._Element, quarter: m.QuarterData) -> None:
    element = _sub(parent, "Quarter")
    _add(element, "DeclarationId", quarter.declaration_id)
    _add(element, "Employer", quarter.employer_noss)
    _add(element, "Year", quarter.year)
    _add(element, "QuarterNbr", quarter.quarter)
    _add(element, "WorkerCode", quarter.worker_code)
    for occupation in quarter.occupations:
        o = _sub(element, "Occupation")
        _add(o, "StartingDate", occupation.start)
        _add(o, "EndingDate", occupation.end)
        _add(o, "JointCommissionNbr", occupation.joint_commission)
        _add(o, "WorkingDaysSystem", occupation.working_days_system)
        _add(o, "MeanWorkingHours", occupation.mean_working_hours)
        _add(o, "RefMeanWorkingHours", occupation.ref_mean_working_hours)
        for service in occupation.services:
            s = _sub(o, "Service")
            _add(s, "Code", service.code)
            _add(s, "Days", service.days)
            _add(s, "Hours", service.hours)
        for remuneration in occupation.remunerations:
            r = _sub(o, "Remuneration")
            _add(r, "Code", remuneration.code)
            _add(r, "Amount", remuneration.amount)


def _social_risk(parent: etree._Element, risk: m.SocialRiskData) -> None:
    element = _sub(parent, "SocialRisk")
    _add(element, "DeclarationId", risk.declaration_id)
    _add(element, "Employer", risk.employer_noss)
    _add(element, "Scenario", risk.scenario)
    _add(element, "EventDate", risk.event_date)
    for name, value in risk.details:
        detail = _sub(element, "Detail")
        _add(detail, "Name", name)
        _add(detail, "Value", value)
    reference = (risk.ref_quarterly_gross_remun, risk.ref_working_time_fraction, risk.ref_joint_commission)
    if None not in reference:  # the three together or none: ReferenceData is one block in drs.xsd too
        r = _sub(element, "ReferenceData")
        for name, value in zip(("QuarterlyGrossRemun", "WorkingTimeFraction", "JointCommissionNbr"), reference):
            _add(r, name, value)
    _add(element, "ReferenceSource", risk.reference_source)


def _consult_result(answer: m.ConsultResult) -> etree._Element:
    root = _root("ConsultResult", answer.caller)
    _add(root, "INSS", answer.inss)
    _add(root, "DataType", answer.data_type)
    _add(root, "From", answer.start)
    _add(root, "To", answer.end)
    for window in answer.granted:
        w = _sub(root, "GrantedWindow")
        _add(w, "From", window.start)
        _add(w, "To", window.end)
        _add(w, "Capacity", window.capacity)
    for period in answer.periods:
        _employment_period(root, period)
    for quarter in answer.quarters:
        _quarter(root, quarter)
    for risk in answer.social_risks:
        _social_risk(root, risk)
    return root


def _notifications(answer: m.NotificationBatch) -> etree._Element:
    root = _root("Notifications", answer.caller)
    _add(root, "AfterSequence", answer.after_sequence)
    _add(root, "LastSequence", answer.last_sequence)
    for notification in answer.notifications:
        n = _sub(root, "Notification")
        _add(n, "Sequence", notification.sequence)
        _add(n, "INSS", notification.inss)
        _add(n, "DataType", notification.data_type)
        _add(n, "DeclarationId", notification.declaration_id)
        _add(n, "Change", notification.change)
        _add(n, "From", notification.start)
        _add(n, "To", notification.end)
    return root


_WRITERS = {
    m.Refused: _refusal,
    m.AuthorizationList: _authorization_list,
    m.RegisterChanged: _register_result,
    m.SubscriptionChanged: _subscription_result,
    m.ConsultResult: _consult_result,
    m.NotificationBatch: _notifications,
}


def answer_element(answer: m.InstitutionAnswer) -> etree._Element:
    """The answer's document (AuthorizationList, RegisterResult, ..., Refusal), unsigned."""
    return _WRITERS[type(answer)](answer)
