"""What an institution asks and what the engine answers (institutions.md), as plain values.

The XML forms (xsd/institution.xsd, namespace urn:declarations:institution:v1)
are read into these and written from them by xmlio/institution_xml.py; the
decisions are services/institutions.py's. Neither side sees the other's form,
so the contract can be read here in one place.

Every request names the institution and a MessageId it never reuses; every
answer repeats both, so an institution can match answers to requests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from declarations.domain.directory import DirectoryAuthorization

DATA_TYPES = ("DIMONA", "DMFA", "DRS_UNEMPLOYMENT", "DRS_HEALTH", "DRS_OCCUPATIONAL")
CHANGES = ("NEW", "UPDATED", "REPLACED", "CANCELLED")


@dataclass(frozen=True)
class Caller:
    """Who asks: read from the signed content of the request only."""
    institution_id: str
    message_id: str


# -- requests ------------------------------------------------------------------

@dataclass(frozen=True)
class ListAuthorizations:
    caller: Caller


@dataclass(frozen=True)
class RegisterPerson:
    caller: Caller
    inss: str
    capacity: str
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True)
class UnregisterPerson:
    caller: Caller
    inss: str
    capacity: str
    valid_from: dt.date


@dataclass(frozen=True)
class Consult:
    caller: Caller
    inss: str
    data_type: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class Subscribe:
    caller: Caller
    data_type: str


@dataclass(frozen=True)
class Unsubscribe:
    caller: Caller
    data_type: str


@dataclass(frozen=True)
class GetNotifications:
    caller: Caller
    after_sequence: int
    max: int


InstitutionRequest = (ListAuthorizations | RegisterPerson | UnregisterPerson | Consult | Subscribe | Unsubscribe
                      | GetNotifications)


# -- answers -------------------------------------------------------------------

@dataclass(frozen=True)
class Refused:
    """A refusal is an answer, not a fault: A001-A006."""
    caller: Caller | None      # None when the request could not be authenticated far enough to name one
    code: str
    message: str


@dataclass(frozen=True)
class AuthorizationList:
    caller: Caller
    authorizations: tuple[DirectoryAuthorization, ...]


@dataclass(frozen=True)
class RegisterChanged:
    """RegisterPerson / UnregisterPerson done: the entry as it now stands (or as it was removed)."""
    caller: Caller
    operation: str             # REGISTERED | UNREGISTERED
    inss: str
    capacity: str
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True)
class SubscriptionChanged:
    caller: Caller
    operation: str             # SUBSCRIBED | UNSUBSCRIBED
    data_type: str


# What a Consult returns, cut to the granted days.

@dataclass(frozen=True)
class GrantedWindow:
    start: dt.date
    end: dt.date
    capacity: str              # the register capacity, authorized for the data type, that grants these days


@dataclass(frozen=True)
class EmploymentPeriodData:
    """DIMONA: a non-cancelled employment period, its dates cut to the granted days."""
    period_id: int
    declaration_id: int        # the declaration that set the current version
    employer_noss: str
    worker_type: str
    joint_commission: str
    start: dt.date
    end: dt.date | None
    planned_hours: int | None


@dataclass(frozen=True)
class ServiceData:
    code: str
    days: int                  # hundredths
    hours: int | None          # hundredths


@dataclass(frozen=True)
class RemunerationData:
    code: str
    amount: int                # euro cents


@dataclass(frozen=True)
class OccupationData:
    start: dt.date             # cut to the granted days
    end: dt.date | None
    joint_commission: str
    working_days_system: int
    mean_working_hours: int
    ref_mean_working_hours: int
    services: tuple[ServiceData, ...]
    remunerations: tuple[RemunerationData, ...]


@dataclass(frozen=True)
class QuarterData:
    """DMFA: the person's part of the current DmfA of one employer and quarter, occupations
    overlapping the granted days only."""
    declaration_id: int
    employer_noss: str
    year: int
    quarter: int
    worker_code: str
    occupations: tuple[OccupationData, ...]


@dataclass(frozen=True)
class SocialRiskData:
    """DRS_*: an accepted social-risk declaration of the data type's sector, event date in the granted days."""
    declaration_id: int
    employer_noss: str
    scenario: str
    event_date: dt.date
    details: tuple[tuple[str, str], ...]        # the scenario's own fields, name -> text, in order
    ref_quarterly_gross_remun: int | None
    ref_working_time_fraction: int | None
    ref_joint_commission: str | None
    reference_source: str                       # DECLARED | DERIVED | NONE


@dataclass(frozen=True)
class ConsultResult:
    caller: Caller
    inss: str
    data_type: str
    start: dt.date             # the window asked for
    end: dt.date
    granted: tuple[GrantedWindow, ...]
    periods: tuple[EmploymentPeriodData, ...] = ()
    quarters: tuple[QuarterData, ...] = ()
    social_risks: tuple[SocialRiskData, ...] = ()


@dataclass(frozen=True)
class Notification:
    sequence: int              # per institution, strictly increasing, no gaps
    inss: str
    data_type: str
    declaration_id: int
    change: str                # NEW | UPDATED | REPLACED | CANCELLED
    start: dt.date             # the period concerned
    end: dt.date | None


@dataclass(frozen=True)
class NotificationBatch:
    caller: Caller
    after_sequence: int
    notifications: tuple[Notification, ...]
    last_sequence: int         # the highest Sequence the institution has now (0: none yet)


InstitutionAnswer = (Refused | AuthorizationList | RegisterChanged | SubscriptionChanged | ConsultResult
                     | NotificationBatch)
