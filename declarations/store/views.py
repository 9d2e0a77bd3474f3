"""Read side: the domain's ports (domain/ports.py) over one connection."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Iterable

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from declarations.domain.model import Quarter
from declarations.domain.ports import Mandate, OccupationSnapshot, QuarterSnapshot, StoredPeriod
from declarations.store import tables as t


def visible_scopes(scope: str) -> tuple[str, ...]:
    """PROD reads PROD; a sender's TEST reads PROD and its own TEST data."""
    return (t.PROD,) if scope == t.PROD else (t.PROD, scope)


def _period(row) -> StoredPeriod:
    return StoredPeriod(row.period_id, row.employer_noss, row.inss, row.starting_date, row.ending_date,
                        row.joint_commission, row.worker_type, row.planned_hours, row.cancelled, row.version)


class StoredView:
    """StoredData for a reader in ``scope``."""

    def __init__(self, connection: Connection, scope: str):
        self.connection = connection
        self.scopes = visible_scopes(scope)

    def period(self, period_id: int) -> StoredPeriod | None:
        p = t.employment_period
        row = self.connection.execute(
            select(p).where(p.c.period_id == period_id, p.c.scope.in_(self.scopes))).first()
        return _period(row) if row else None

    def periods_of(self, employer: str, inss_list: Iterable[str]) -> dict[str, list[StoredPeriod]]:
        p = t.employment_period
        found: dict[str, list[StoredPeriod]] = defaultdict(list)
        inss_list = list(inss_list)
        for chunk_start in range(0, len(inss_list), 500):
            chunk = inss_list[chunk_start:chunk_start + 500]
            rows = self.connection.execute(select(p).where(
                p.c.employer_noss == employer, p.c.inss.in_(chunk), p.c.cancelled.is_(False),
                p.c.scope.in_(self.scopes)))
            for row in rows:
                found[row.inss].append(_period(row))
        return found

    def student_hours(self, inss: str, year: int, *, excluding_period: int | None) -> int:
        p = t.employment_period
        query = select(func.coalesce(func.sum(p.c.planned_hours), 0)).where(
            p.c.inss == inss, p.c.worker_type == "STU", p.c.cancelled.is_(False), p.c.scope.in_(self.scopes),
            p.c.starting_date >= dt.date(year, 1, 1), p.c.starting_date <= dt.date(year, 12, 31))
        if excluding_period:
            query = query.where(p.c.period_id != excluding_period)
        return int(self.connection.execute(query).scalar_one())

    def current_dmfa(self, employer: str, quarter: Quarter) -> int | None:
        d = t.dmfa
        # Newest first: a sender's TEST replacement shadows the PROD one it replaced.
        return self.connection.execute(
            select(d.c.declaration_id).where(d.c.employer_noss == employer, d.c.quarter == quarter.code,
                                             d.c.is_current.is_(True), d.c.scope.in_(self.scopes))
            .order_by(d.c.declaration_id.desc()).limit(1)).scalar()

    def social_risk_exists(self, scenario: str, employer: str, inss: str, same_event_key: str) -> bool:
        s = t.social_risk
        return self.connection.execute(select(s.c.declaration_id).where(
            s.c.scenario == scenario, s.c.employer_noss == employer, s.c.inss == inss,
            s.c.same_event_key == same_event_key, s.c.scope.in_(self.scopes)).limit(1)).first() is not None

    def dmfa_history(self, employer: str, inss: str, before: Quarter, limit: int = 4) -> list[QuarterSnapshot]:
        d, p, o, r = t.dmfa, t.dmfa_person, t.dmfa_occupation, t.dmfa_remuneration
        declarations = self.connection.execute(
            select(d.c.declaration_id, d.c.quarter, p.c.person_nbr)
            .join(p, p.c.declaration_id == d.c.declaration_id)
            .where(d.c.employer_noss == employer, d.c.is_current.is_(True), d.c.quarter < before.code,
                   d.c.scope.in_(self.scopes), p.c.inss == inss)
            .order_by(d.c.quarter.desc(), d.c.declaration_id.desc())).all()
        snapshots: list[QuarterSnapshot] = []
        seen: set[int] = set()
        for row in declarations:
            if row.quarter in seen:
                continue  # a TEST replacement and its PROD original: the newest counts
            seen.add(row.quarter)
            key = and_(r.c.declaration_id == row.declaration_id, r.c.person_nbr == row.person_nbr)
            remun = self.connection.execute(
                select(func.coalesce(func.sum(r.c.amount), 0)).where(key, r.c.code.in_(("001", "002")))).scalar_one()
            occupations = self.connection.execute(
                select(o).where(o.c.declaration_id == row.declaration_id, o.c.person_nbr == row.person_nbr)).all()
            snapshots.append(QuarterSnapshot(
                Quarter(row.quarter // 10, row.quarter % 10), int(remun),
                tuple(OccupationSnapshot(x.starting_date, x.occupation_nbr, x.mean_working_hours,
                                         x.ref_mean_working_hours, x.joint_commission) for x in occupations)))
            if len(snapshots) == limit:
                break
        return snapshots


class DirectoryReader:
    """DirectoryView over the loaded directory."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def registered_enterprise_nbr(self, noss: str):
        e = t.employer
        row = self.connection.execute(select(e.c.enterprise_nbr, e.c.in_directory).where(e.c.noss == noss)).first()
        if row is None or not row.in_directory:
            return False
        return row.enterprise_nbr

    def sender_fingerprints(self, sender_id: str) -> frozenset[str]:
        c = t.sender_certificate
        return frozenset(self.connection.execute(
            select(c.c.fingerprint).where(c.c.sender_id == sender_id)).scalars())

    def sender_exists(self, sender_id: str) -> bool:
        return self.connection.execute(
            select(t.sender.c.sender_id).where(t.sender.c.sender_id == sender_id)).first() is not None

    def sender_employer(self, sender_id: str) -> str | None:
        return self.connection.execute(
            select(t.sender.c.noss).where(t.sender.c.sender_id == sender_id)).scalar()

    def mandates(self, sender_id: str, noss: str) -> list[Mandate]:
        m = t.mandate
        rows = self.connection.execute(select(m).where(m.c.sender_id == sender_id, m.c.noss == noss))
        return [Mandate(r.sender_id, r.noss, frozenset(r.kinds.split()), r.valid_from, r.valid_to) for r in rows]
