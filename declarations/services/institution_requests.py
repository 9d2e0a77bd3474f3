"""Who asks: an institution's signed request, authenticated (A004), then handed to the desk.

The request element (one of institution.xsd's ``*Request``, already valid
against the XSD at the edge) is verified as its own document, in the
signature profile (channels.md): the element taken out of its SOAP wrapper,
which exclusive canonicalization makes verify the same inside and outside.
Then, as for a sender's declaration (S003/S004), the certificate must be
registered for the InstitutionId named in the *signed* content and valid
now; the desk checks the registration in the statement that claims the
MessageId (one round trip less). Any failure is A004, refused and logged by
the desk with what the request only claims (InstitutionId, MessageId), never
trusted.

From there on only the signed content is read (``signature.verify(...).signed``),
never the received tree beside it: a signature-wrapping attack (a second,
unsigned InstitutionId or field somewhere else) changes nothing. The desk
decides the rest in one transaction: A005 (MessageId reused), the
authorizations (A001-A003, A006), the register, the log.

No SOAP here: the channel gives the element and signs the answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from lxml import etree

from declarations.domain import institution_messages as m
from declarations.exceptions import SignatureError
from declarations.services.examine import certificate_validity
from declarations.services.institutions import SignedBy
from declarations.xmlio import institution_xml, signature


class Desk(Protocol):
    """What this module needs of services/institutions.py's InstitutionDesk."""

    def handle(self, request: m.InstitutionRequest, signed_by: SignedBy | None = None) -> m.InstitutionAnswer: ...

    def refuse_unauthenticated(self, operation: str, claimed: m.Caller | None, message: str) -> m.Refused: ...

    def institution_fingerprints(self, institution_id: str) -> tuple[str, ...]: ...


def answer(desk: Desk, element: etree._Element, now: dt.datetime) -> m.InstitutionAnswer:
    """The desk's answer to a signed request element, or its A004 refusal."""
    operation = institution_xml.operation_of(element)
    root = etree.QName(element).localname
    try:
        verified = signature.verify(element)
    except SignatureError as error:
        # Unsigned (S001) or off-profile / not verifying (S002): said in the message, refused as A004.
        return desk.refuse_unauthenticated(operation, institution_xml.claimed_caller(element),
                                           f"the request is not signed in the profile ({error.code}): {error.message}")
    signed = verified.signed
    caller = institution_xml.claimed_caller(signed)  # signed, but not yet trusted: a claim until the next check
    if caller is None:  # the XSD requires both; a guard, not a path
        return desk.refuse_unauthenticated(operation, None, f"the signed {root} names no InstitutionId or MessageId")
    unregistered = (f"the signing certificate (SHA-256 {verified.fingerprint}) is not registered for "
                    f"institution {caller.institution_id}")
    expired = certificate_validity(verified.certificate, now, f"/{root}/Signature")
    signed_by = SignedBy(verified.fingerprint, unregistered, expired[0].message if expired else None)
    try:
        request = institution_xml.read_request(signed)
    except ValueError:  # UnreadableRequest, or a date/number the reader could not convert
        # Off the XSD (the edge keeps these out): the certificate is still checked first, as for any request.
        if verified.fingerprint not in desk.institution_fingerprints(caller.institution_id):
            return desk.refuse_unauthenticated(operation, caller, unregistered)
        if signed_by.invalid is not None:
            return desk.refuse_unauthenticated(operation, caller, signed_by.invalid)
        raise
    # The desk checks the certificate against the directory (A004) in the statement that claims the MessageId.
    return desk.handle(request, signed_by)
