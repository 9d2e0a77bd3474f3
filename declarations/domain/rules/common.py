"""Stage 4: identifiers (C001-C003), then the directory (C004, C007, C008, S005).

An identifier that fails is not looked up: an invalid NOSS number gives C003
alone; an invalid INSS does not stop the employer's look-up; S005 and C007 are
checked only for an employer in the directory.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterator

from declarations.domain.anomalies import Anomaly, anomaly
from declarations.domain.identifiers import enterprise_nbr_is_valid, inss_is_valid, noss_nbr_is_valid
from declarations.domain.model import Declaration, inss_of
from declarations.domain.ports import DirectoryView


def _root(declaration: Declaration) -> str:
    return {"DIMONA": "/Dimona", "DMFA": "/DmfA", "DRS": "/SocialRisk"}[declaration.kind]


def identifier_anomalies(declaration: Declaration) -> Iterator[Anomaly]:
    for inss, location in inss_of(declaration):
        if not inss_is_valid(inss):
            yield anomaly("C001", f"INSS {inss} is not a valid national register or BIS number", location)
    employer = declaration.employer
    root = _root(declaration)
    if employer.enterprise_nbr is not None and not enterprise_nbr_is_valid(employer.enterprise_nbr):
        yield anomaly("C002", f"enterprise number {employer.enterprise_nbr} is not valid (check digits)",
                      f"{root}/Employer/EnterpriseNbr")
    if not noss_nbr_is_valid(employer.noss):
        yield anomaly("C003", f"NOSS registration number {employer.noss} is not valid (check digits)",
                      f"{root}/Employer/NOSSRegistrationNbr")


def may_declare(directory: DirectoryView, sender_id: str, noss: str, kind: str, day: dt.date) -> bool:
    """The sender is the employer itself, or holds a mandate from it for this kind on that day (S005)."""
    if directory.sender_employer(sender_id) == noss:
        return True
    return any(m.covers(kind, day) for m in directory.mandates(sender_id, noss))


def directory_anomalies(declaration: Declaration, directory: DirectoryView, today: dt.date,
                        *, batch_sender_id: str | None = None) -> Iterator[Anomaly]:
    employer = declaration.employer
    root = _root(declaration)
    sender_id = declaration.header.sender_id
    if batch_sender_id is not None and sender_id != batch_sender_id:
        yield anomaly("C008", f"the declaration's SenderId {sender_id} is not the batch's SenderId {batch_sender_id}",
                      f"{root}/Header/SenderId")
    if not noss_nbr_is_valid(employer.noss):
        return  # C003 already said it; an invalid number is not looked up
    registered = directory.registered_enterprise_nbr(employer.noss)
    if registered is False:
        yield anomaly("C004", f"employer {employer.noss} is not in the directory", f"{root}/Employer/NOSSRegistrationNbr")
        return
    if (employer.enterprise_nbr is not None and enterprise_nbr_is_valid(employer.enterprise_nbr)
            and employer.enterprise_nbr != registered):
        yield anomaly("C007", f"enterprise number {employer.enterprise_nbr} is not the one registered for employer "
                      f"{employer.noss} ({registered})", f"{root}/Employer/EnterpriseNbr")
    if not may_declare(directory, sender_id, employer.noss, declaration.kind, today):
        yield anomaly("S005", f"sender {sender_id} holds no mandate from employer {employer.noss} for "
                      f"{declaration.kind} on {today.isoformat()}", f"{root}/Header/SenderId")
