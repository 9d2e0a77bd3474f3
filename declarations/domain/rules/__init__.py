"""The rules of declarations.md: generators that yield anomalies.

Each kind has one entry point ``check(declaration, context)``; stages 4 and 5
(identifiers and directory, then the kind's rules) are in ``common`` and the
kind modules. A rule that needs stored data skips itself when
``context.stored`` is None (offline validation).

A DmfA's rules that need only the declaration and the day can run beforehand,
outside the declaration's transaction (``prepare_rules``), and be handed to
``kind_rules``: the anomalies are the same, in the same order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from declarations.domain.anomalies import Anomaly
from declarations.domain.model import Declaration, Dimona, DmfA, SocialRisk
from declarations.domain.ports import StoredData

if TYPE_CHECKING:
    from declarations.domain.rules.dmfa import PreparedDmfA


@dataclass(frozen=True)
class RuleContext:
    today: dt.date                  # reception day, Europe/Brussels
    stored: StoredData | None       # None: offline, no stored data


def prepare_rules(declaration: Declaration, today: dt.date) -> PreparedDmfA | None:
    """What ``kind_rules`` can do before any stored data is read: a DmfA's rules that need only the
    declaration and ``today`` (``dmfa.prepare``); None for the other kinds (nothing worth it)."""
    if type(declaration) is not DmfA:
        return None
    from declarations.domain.rules import dmfa

    return dmfa.prepare(declaration, today)


def kind_rules(declaration: Declaration, context: RuleContext,
               prepared: PreparedDmfA | None = None) -> Iterator[Anomaly]:
    """The kind's rules; ``prepared``: ``prepare_rules(declaration, context.today)``, if it was done before."""
    from declarations.domain.rules import dimona, dmfa, social_risk

    if type(declaration) is DmfA:
        yield from dmfa.check(declaration, context, prepared)
        return
    checker = {Dimona: dimona.check, SocialRisk: social_risk.check}[type(declaration)]
    yield from checker(declaration, context)
