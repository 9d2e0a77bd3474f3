"""The two read use cases of the real-time channel: GetDeclarationResult and Prefill.

Authorization and data only; no SOAP here. Each takes the signed request
element (``DeclarationResultRequest`` / ``PrefillRequest`` of
``urn:declarations:lookup:v1``, already valid against
xsd/lookup.xsd) and either returns what the sender may see or
raises :class:`Refused` (a code and a message the channel turns into a
signed ``Refusal``).

Who asks is established as for a declaration (channels.md, Signature
profile): the request verifies as its own document (S001/S002), its
certificate is registered for the SenderId it names (S003) and valid now
(S004). Only the signed content is read afterwards.

- GetDeclarationResult: the stored signed DeclarationResult, only to the
  sender that submitted the declaration. "Not found" and "another sender's"
  get the same answer (NOT_FOUND), so a sender cannot probe DeclarationIds.
  A declaration refused for its signature (S001-S004) was never
  authenticated: its Header SenderId is only a claim, so it is not given to
  that sender either.
- Prefill: the ReferenceData the engine would derive (domain/reference.py)
  for that employer, worker and EventDate, from PROD data; only to a sender
  that may declare social risks (DRS) for that employer today: the employer
  itself or a sender holding a DRS mandate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lxml import etree
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from declarations import ns
from declarations.domain.identifiers import inss_is_valid, noss_nbr_is_valid
from declarations.domain.model import ReferenceData
from declarations.domain.reference import reference_for
from declarations.domain.rules.common import may_declare
from declarations.exceptions import SignatureError
from declarations.services.examine import signer_anomalies
from declarations.settings import Settings, brussels_today
from declarations.store import tables as t
from declarations.store.views import DirectoryReader, StoredView
from declarations.xmlio import parsing, signature

LOOKUP_NS = ns.LOOKUP
_UNAUTHENTICATED = {"S001", "S002", "S003", "S004"}


class Refused(Exception):
    """The request is answered with a signed Refusal (not a fault)."""

    def __init__(self, code: str, message: str, *, sender_id: str | None = None, message_id: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.sender_id = sender_id
        self.message_id = message_id


@dataclass(frozen=True)
class PrefillAnswer:
    sender_id: str
    message_id: str
    employer: str
    inss: str
    event_date: dt.date
    computed_at: dt.datetime
    reference: ReferenceData | None


def _text(element: etree._Element, name: str) -> str | None:
    return element.findtext(f"{{{LOOKUP_NS}}}{name}")


def _authenticate(connection: Connection, element: etree._Element, now: dt.datetime, root: str) -> etree._Element:
    """Verify the request's signature and its signer; return the signed content."""
    claimed_sender, claimed_message = _text(element, "SenderId"), _text(element, "MessageId")
    where = f"/{root}/Signature"
    try:
        verified = signature.verify(element)
    except SignatureError as error:
        raise Refused(error.code, error.message, sender_id=claimed_sender, message_id=claimed_message) from None
    signed = verified.signed
    sender_id, message_id = _text(signed, "SenderId"), _text(signed, "MessageId")
    fingerprints = DirectoryReader(connection).sender_fingerprints(sender_id) if sender_id else frozenset()
    untrusted = signer_anomalies(fingerprints, verified, sender_id, now, where)
    if untrusted:
        raise Refused(untrusted[0].code, untrusted[0].message, sender_id=sender_id, message_id=message_id)
    return signed


def declaration_result(engine: Engine, settings: Settings, element: etree._Element) -> bytes:
    """The stored signed DeclarationResult (bytes as stored) or Refused."""
    now = settings.now()
    with engine.connect() as connection:
        signed = _authenticate(connection, element, now, "DeclarationResultRequest")
        sender_id, message_id = _text(signed, "SenderId"), _text(signed, "MessageId")
        d = t.declaration
        by_id, by_message = _text(signed, "DeclarationId"), _text(signed, "DeclarationMessageId")
        if by_id is not None:
            row = connection.execute(select(d.c.sender_id, d.c.result).where(d.c.id == int(by_id.strip()))).first()
        else:
            k = t.message_key
            row = connection.execute(
                select(d.c.sender_id, d.c.result).join(k, k.c.declaration_id == d.c.id)
                .where(k.c.sender_id == sender_id, k.c.message_id == by_message)).first()
    wanted = f"DeclarationId {by_id.strip()}" if by_id is not None else f"MessageId {by_message}"
    if row is None or row.sender_id != sender_id or _unauthenticated(row.result):
        raise Refused("NOT_FOUND", f"sender {sender_id} submitted no declaration with {wanted}",
                      sender_id=sender_id, message_id=message_id)
    return bytes(row.result)


def _unauthenticated(result: bytes) -> bool:
    root = parsing.parse(bytes(result))  # our own signed receipt, as stored
    codes = {a.findtext("{urn:declarations:result:v1}Code")
             for a in root.iterchildren("{urn:declarations:result:v1}Anomaly")}
    return bool(codes & _UNAUTHENTICATED)


def prefill(engine: Engine, settings: Settings, element: etree._Element) -> PrefillAnswer:
    """The ReferenceData the engine would derive (None: nothing to derive from), or Refused."""
    now = settings.now()
    today = brussels_today(now)
    with engine.connect() as connection:
        signed = _authenticate(connection, element, now, "PrefillRequest")
        sender_id, message_id = _text(signed, "SenderId"), _text(signed, "MessageId")
        employer, inss = _text(signed, "Employer"), _text(signed, "INSS")
        event_date = dt.date.fromisoformat(_text(signed, "EventDate").strip())

        def refuse(code: str, message: str):
            return Refused(code, message, sender_id=sender_id, message_id=message_id)

        if not noss_nbr_is_valid(employer):
            raise refuse("C003", f"NOSS registration number {employer} is not valid (check digits)")
        if not inss_is_valid(inss):
            raise refuse("C001", f"INSS {inss} is not a valid national register or BIS number")
        directory = DirectoryReader(connection)
        if directory.registered_enterprise_nbr(employer) is False:
            raise refuse("C004", f"employer {employer} is not in the directory")
        if not may_declare(directory, sender_id, employer, "DRS", today):
            raise refuse("S005", f"sender {sender_id} holds no mandate from employer {employer} for DRS on "
                         f"{today.isoformat()}")
        reference = reference_for(StoredView(connection, t.PROD), employer, inss, event_date)
    return PrefillAnswer(sender_id, message_id, employer, inss, event_date, now, reference)
