"""Stages 1-4a of declarations.md, the part that needs neither store nor
directory: limits and well-formedness, signature profile, XSD, decoding and
identifiers. ``submit`` and the offline ``validate`` both start here, so the
pre-submission check a payroll vendor runs is the engine's own code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from lxml import etree

from declarations import ns, samples
from declarations.domain.anomalies import Anomaly, anomaly
from declarations.domain.model import Declaration, Header
from declarations.domain.rules.common import identifier_anomalies
from declarations.exceptions import InputRefused, SignatureError
from declarations.xmlio import decoding, parsing, schemas, signature


@dataclass
class Examined:
    """What the pure stages found. ``refusal`` set means: stop, refuse with it."""
    received: bytes
    refusal: list[Anomaly] = field(default_factory=list)
    kind: str | None = None
    header: Header | None = None
    verified: signature.VerifiedDocument | None = None
    content_sha256: str | None = None
    xsd: list[Anomaly] = field(default_factory=list)
    declaration: Declaration | None = None
    identifiers: list[Anomaly] = field(default_factory=list)

    @property
    def keyed(self) -> bool:
        """Whether ``(SenderId, MessageId)`` can be checked: a verified, readable header."""
        return bool(self.verified is not None and self.header and self.header.sender_id and self.header.message_id)


def examine(data: bytes, *, max_bytes: int, element: etree._Element | None = None) -> Examined:
    result = Examined(received=data)
    owned = element is None  # parsed here, for this examination alone
    # Stage 1: limits and well-formedness.
    try:
        if owned:
            element = parsing.parse(data, max_bytes=max_bytes)
        else:
            parsing.check_size(data, max_bytes)
    except InputRefused as error:
        result.refusal = [anomaly(error.code, error.message, error.location)]
        return result
    result.kind = ns.KIND_BY_ROOT.get(element.tag)
    # Stage 3 checks the declaration as received, Signature included. A tree parsed here is handed over
    # to verify (no copy: it removes the Signature in place), so its XSD problems are found first; they
    # are still reported only after stage 2, as always.
    problems = schemas.problems(element) if owned else None
    # Stage 2: the signature profile. From here on only the signed content is used.
    try:
        result.verified = signature.verify(element, owned=owned)
    except SignatureError as error:
        result.refusal = [anomaly(error.code, error.message, error.location)]
        result.header = decoding.read_header(element)  # echoed in the result only, never trusted
        return result
    signed = result.verified.signed
    result.header = decoding.read_header(signed)
    # SHA-256 of the exclusive canonical form of the signed content, as verify computed it (no second c14n).
    # The Signature is not part of it: an ECDSA signature differs at every signing, and re-sending the same
    # declaration re-signed is still a retry.
    result.content_sha256 = result.verified.content_sha256
    # Stage 3: XSD, on the declaration as received (its Signature included).
    if problems is None:
        problems = schemas.problems(element)
    result.xsd = [anomaly("C005", p.message, p.location) for p in problems]
    if result.xsd:
        return result
    # Stage 4a: identifiers.
    result.declaration = decoding.decode(signed)
    result.identifiers = list(identifier_anomalies(result.declaration))
    return result


def certificate_validity(certificate: x509.Certificate, now: dt.datetime, location: str) -> list[Anomaly]:
    """S004: the signing certificate is valid at the reception moment."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not start <= now <= end:
        return [anomaly("S004", f"the signing certificate is valid from {start:%Y-%m-%d} to {end:%Y-%m-%d}, "
                        f"not on {now:%Y-%m-%d}", location)]
    return []


def signer_anomalies(fingerprints: frozenset[str], verified: signature.VerifiedDocument, sender_id: str,
                     now: dt.datetime, location: str) -> list[Anomaly]:
    """Stage 2, after the signature verifies: the certificate is registered for the
    SenderId (S003), then valid at the reception moment (S004)."""
    if verified.fingerprint not in fingerprints:
        return [anomaly("S003", f"the signing certificate (SHA-256 {verified.fingerprint}) is not registered for "
                        f"sender {sender_id}", location)]
    return certificate_validity(verified.certificate, now, location)


def signature_location(kind: str | None) -> str:
    root = {"DIMONA": "/Dimona", "DMFA": "/DmfA", "DRS": "/SocialRisk"}.get(kind or "", "")
    return f"{root}/Signature"


def load_on_first_use(signer: signature.Signer) -> list[Examined]:
    """Examine a small declaration of each kind, signed here with ``signer``: what examining loads on its
    first use is then loaded in this process (the signature schema, the crypto backend's modules, the
    decoder's stylesheet for this thread). For a process about to fork batch workers
    (batch_items.prepare_to_fork): they inherit it, rather than each loading it during its first
    declaration, on the batch's critical path (~5-10 ms of a fresh worker's CPU). Returns what was found
    (each one goes all the way, decoded: a test checks it)."""
    day = dt.date(2025, 1, 1)
    head = dict(message_id="load-on-first-use", sender_id="1001", noss="555123433")
    inss = samples.valid_inss(1)
    documents = [
        samples.dimona("In", **head, INSS=inss, StartingDate=day, JointCommissionNbr="200", WorkerType="OTH"),
        samples.dmfa(**head, quarter="20251", workers=[
            samples.worker(inss, sequence=1, occupations=[samples.occupation(start=day)])]),
        samples.social_risk("Incapacity", **head, inss=inss, event_date=day, LastDayWorked=day)]
    return [examine(data, max_bytes=len(data)) for data in (samples.to_bytes(signer.sign(d)) for d in documents)]
