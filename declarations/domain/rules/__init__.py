"""The rules of declarations.md: generators that yield anomalies.

Each kind has one entry point ``check(declaration, context)``; stages 4 and 5
(identifiers and directory, then the kind's rules) are in ``common`` and the
kind modules. A rule that needs stored data skips itself when
``context.stored`` is None (offline validation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

from declarations.domain.anomalies import Anomaly
from declarations.domain.model import Declaration, Dimona, DmfA, SocialRisk
from declarations.domain.ports import StoredData


@dataclass(frozen=True)
class RuleContext:
    today: dt.date                  # reception day, Europe/Brussels
    stored: StoredData | None       # None: offline, no stored data


def kind_rules(declaration: Declaration, context: RuleContext) -> Iterator[Anomaly]:
    from declarations.domain.rules import dimona, dmfa, social_risk

    checker = {Dimona: dimona.check, DmfA: dmfa.check, SocialRisk: social_risk.check}[type(declaration)]
    yield from checker(declaration, context)
