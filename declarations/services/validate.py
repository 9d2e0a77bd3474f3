"""The offline pre-submission check (operations.md: ``declarations validate``).

The same code as ``submit`` for every check that needs neither the store nor
the directory: limits, well-formedness, the signature against the
certificate in the document and its dates, XSD, identifiers, and the rules
within the document. Nothing is stored; DeclarationId is 0.
"""

from __future__ import annotations

import datetime as dt

from declarations.domain.anomalies import any_blocking
from declarations.domain.outcome import Outcome
from declarations.domain.rules import RuleContext, kind_rules
from declarations.services.examine import certificate_validity, examine, signature_location
from declarations.settings import brussels_today


def validate(data: bytes, *, now: dt.datetime, max_bytes: int) -> Outcome:
    ex = examine(data, max_bytes=max_bytes)
    anomalies = list(ex.refusal)
    if not anomalies:
        anomalies = certificate_validity(ex.verified.certificate, now, signature_location(ex.kind))
    if not anomalies:
        anomalies = list(ex.xsd)
    if not anomalies:
        anomalies = list(ex.identifiers)
        if not any_blocking(anomalies):
            anomalies += list(kind_rules(ex.declaration, RuleContext(today=brussels_today(now), stored=None)))
    header = ex.header
    return Outcome(declaration_id=0, received_at=now, anomalies=tuple(anomalies),
                   message_id=header.message_id if header else None,
                   sender_id=header.sender_id if header else None, kind=ex.kind,
                   environment=header.environment if header else None)
