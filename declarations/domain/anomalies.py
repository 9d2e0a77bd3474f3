"""Every anomaly code of the contract, its severity and what it means.

The catalogue is data: documentation (docs/anomalies.md) is checked against
it by a test, and every rule builds its Anomaly through ``anomaly()`` so a
code cannot be raised with the wrong severity.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    BLOCKING = "BLOCKING"
    WARNING = "WARNING"


B, W = Severity.BLOCKING, Severity.WARNING

# code -> (severity, what the rule checks: the short form of declarations.md)
CATALOGUE: dict[str, tuple[Severity, str]] = {
    # Dimona
    "D001": (B, "EndingDate before StartingDate"),
    "D002": (B, "the period overlaps another non-cancelled period of the same employer, worker and joint commission"),
    "D003": (B, "PeriodId unknown, or a period of another employer"),
    "D004": (B, "the period is cancelled"),
    "D005": (W, "DimonaIn received after its StartingDate (late)"),
    "D006": (B, "StartingDate more than 365 days after today"),
    "D007": (B, "student without PlannedHoursNbr, or student, flexi-job or occasional worker without EndingDate"),
    "D008": (W, "student quota of 600 hours in the calendar year exceeded"),
    "D009": (B, "flexi-job or occasional worker outside the allowed joint commissions"),
    "D010": (B, "occasional worker period of more than 2 calendar days"),
    "D011": (B, "DimonaOut EndingDate before the period's StartingDate"),
    # DmfA
    "M001": (B, "the quarter is not over yet"),
    "M002": (B, "an ORIGINAL while a current accepted DmfA exists for this employer and quarter"),
    "M003": (B, "ReplacesDeclarationId missing, wrong, or given on an ORIGINAL"),
    "M004": (B, "an occupation that does not overlap the quarter"),
    "M005": (B, "OccupationEndingDate before OccupationStartingDate"),
    "M006": (B, "MeanWorkingHours greater than RefMeanWorkingHours"),
    "M007": (B, "more service days than the occupation's days in the quarter allow"),
    "M008": (B, "NetOwedAmount is not the sum of the contributions"),
    "M009": (B, "a contribution Amount is not Base times its rate"),
    "M010": (W, "an occupation with no Dimona period covering it"),
    "M011": (B, "duplicate NaturalPersonSequenceNbr, INSS or OccupationSequenceNbr"),
    "M012": (B, "the contribution Base is not the worker record's remuneration"),
    "M013": (B, "a ContributionCode not allowed for the WorkerCode"),
    # Social risk
    "R002": (B, "no Dimona period of this employer and worker contains EventDate"),
    "R003": (B, "incoherent scenario data"),
    "R004": (B, "EventDate more than 30 days after today"),
    "R005": (W, "ReferenceData differs from what the engine derives"),
    "R006": (B, "the same social risk was already declared"),
    "R007": (W, "ReferenceData left out and no DmfA data to derive it from"),
    # Common
    "C001": (B, "INSS invalid"),
    "C002": (B, "enterprise number invalid"),
    "C003": (B, "NOSS registration number invalid"),
    "C004": (B, "employer not in the directory"),
    "C005": (B, "not valid against the XSD"),
    "C006": (B, "MessageId reused by the sender with different content"),
    "C007": (B, "EnterpriseNbr is not the one registered for the NOSS registration number"),
    "C008": (B, "the declaration's SenderId is not the batch's SenderId"),
    "C009": (B, "not well-formed, or a DTD, entity declaration or external reference"),
    "C010": (B, "larger than the configured limit"),
    "S001": (B, "no signature"),
    "S002": (B, "the signature does not verify or breaks the signature profile"),
    "S003": (B, "the signing certificate is not registered for the SenderId"),
    "S004": (B, "the certificate is outside its validity period"),
    "S005": (B, "the sender holds no mandate from the employer for this kind"),
}


@dataclass(frozen=True)
class Anomaly:
    code: str
    severity: Severity
    message: str
    location: str | None = None

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.BLOCKING


def anomaly(code: str, message: str, location: str | None = None) -> Anomaly:
    """Build an anomaly with the catalogue's severity for ``code``."""
    severity, _ = CATALOGUE[code]
    return Anomaly(code, severity, message, location)


def any_blocking(anomalies) -> bool:
    return any(a.blocking for a in anomalies)
