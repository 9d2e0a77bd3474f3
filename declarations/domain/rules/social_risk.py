"""Social-risk rules R002-R007 (declarations.md). Scenario specifics come
from the catalogue (domain/scenarios.py), not from code here."""

from __future__ import annotations

from typing import Iterator

from declarations.domain.anomalies import Anomaly, anomaly
from declarations.domain.model import ReferenceData, SocialRisk
from declarations.domain.reference import reference_for
from declarations.domain.rules import RuleContext
from declarations.domain.rules.dimona import overlaps
from declarations.domain.scenarios import Coherence

EVENT_HORIZON_DAYS = 30


def derived_reference(risk: SocialRisk, ctx: RuleContext) -> ReferenceData | None:
    if ctx.stored is None:
        return None
    return reference_for(ctx.stored, risk.employer.noss, risk.inss, risk.event_date)


def check(risk: SocialRisk, ctx: RuleContext) -> Iterator[Anomaly]:
    where = risk.location
    for rule in risk.scenario.coherence:
        yield from _coherence(rule, risk, ctx, where)
    if (risk.event_date - ctx.today).days > EVENT_HORIZON_DAYS:
        yield anomaly("R004", f"EventDate {risk.event_date} is more than {EVENT_HORIZON_DAYS} days after today "
                      f"({ctx.today})", "/SocialRisk/EventDate")
    if ctx.stored is None:
        return
    periods = ctx.stored.periods_of(risk.employer.noss, [risk.inss]).get(risk.inss, [])
    if not any(overlaps(risk.event_date, risk.event_date, p.starting_date, p.ending_date) for p in periods):
        yield anomaly("R002", f"no Dimona period of employer {risk.employer.noss} for worker {risk.inss} contains "
                      f"EventDate {risk.event_date}", "/SocialRisk/EventDate")
    if ctx.stored.social_risk_exists(risk.scenario.code, risk.employer.noss, risk.inss, risk.same_event_key):
        what = f"Month {risk.same_event_key}" if risk.scenario.same_event_field else f"EventDate {risk.event_date}"
        yield anomaly("R006", f"a {risk.scenario.code} declaration for this employer, worker and {what} was already "
                      "accepted", where)
    if not risk.scenario.reference_data:
        return
    derived = derived_reference(risk, ctx)
    if risk.reference_data is None:
        if derived is None:
            yield anomaly("R007", "ReferenceData was left out and no DmfA of this employer names the worker in an "
                          "earlier quarter, so it cannot be derived", where)
        return
    if derived is None:
        return
    for attribute, element in ReferenceData.FIELDS:
        given, computed = getattr(risk.reference_data, attribute), getattr(derived, attribute)
        if given != computed:
            yield anomaly("R005", f"{element} {given} differs from {computed}, derived from the stored DmfA data",
                          f"{where}/ReferenceData/{element}")


def _coherence(rule: Coherence, risk: SocialRisk, ctx: RuleContext, where: str) -> Iterator[Anomaly]:
    values = [risk.data.get(name) for name in rule.fields]
    if rule.kind == "not_after_event":
        day = values[0]
        if day is not None and day > risk.event_date:
            yield anomaly("R003", f"{rule.message} ({day} after {risk.event_date})", f"{where}/{rule.fields[0]}")
    elif rule.kind == "month_not_after_today":
        month = values[0]
        if month is not None and month > f"{ctx.today:%Y-%m}":
            yield anomaly("R003", f"{rule.message} ({month} after {ctx.today:%Y-%m})", f"{where}/{rule.fields[0]}")
    elif rule.kind == "not_all_zero":
        if all(v == 0 for v in values):
            yield anomaly("R003", rule.message, where)
    else:  # a catalogue entry naming a check that does not exist is a programming error
        raise ValueError(f"unknown coherence check {rule.kind!r}")
