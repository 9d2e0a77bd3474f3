"""What the engine decided about one declaration: the content of a DeclarationResult."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from declarations.domain.anomalies import Anomaly, Severity

ACCEPTED = "ACCEPTED"
ACCEPTED_WITH_WARNINGS = "ACCEPTED_WITH_WARNINGS"
REFUSED = "REFUSED"


def status_of(anomalies: list[Anomaly]) -> str:
    if any(a.severity is Severity.BLOCKING for a in anomalies):
        return REFUSED
    return ACCEPTED_WITH_WARNINGS if anomalies else ACCEPTED


@dataclass(frozen=True)
class Outcome:
    declaration_id: int
    received_at: dt.datetime
    anomalies: tuple[Anomaly, ...]
    message_id: str | None = None
    sender_id: str | None = None
    kind: str | None = None
    environment: str | None = None
    period_id: int | None = None
    status: str = field(default="")

    def __post_init__(self):
        if not self.status:
            object.__setattr__(self, "status", status_of(list(self.anomalies)))

    @property
    def accepted(self) -> bool:
        return self.status != REFUSED
