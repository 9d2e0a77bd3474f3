"""Write side: the archive, the message keys and the shared facts.

Every function runs inside the caller's transaction; the service commits the
archive row, the key, the facts and the signed result together, so a crash
leaves either all of them or none.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from declarations.domain.model import (DimonaIn, DimonaOut, DimonaUpdate, Dimona, DmfA,
                                       ReferenceData, SocialRisk)
from declarations.domain.rules.dimona import apply_cancel, apply_out, apply_update
from declarations.store import tables as t
from declarations.store.database import insert_ignoring_duplicates, is_sqlite
from declarations.store.views import StoredView


# --- archive ---------------------------------------------------------------

@dataclass(frozen=True)
class StoredResult:
    declaration_id: int
    content_sha256: str | None
    status: str
    result: bytes


def new_declaration(connection: Connection, *, received_at: dt.datetime, channel: str, original: bytes,
                    kind: str | None = None, sender_id: str | None = None, message_id: str | None = None,
                    environment: str | None = None, content_sha256: str | None = None,
                    batch_id: str | None = None) -> int:
    """Archive a received message; its row id is its DeclarationId."""
    return connection.execute(insert(t.declaration).values(
        received_at=received_at, channel=channel, kind=kind, sender_id=sender_id, message_id=message_id,
        environment=environment, content_sha256=content_sha256, original=original, batch_id=batch_id,
        status="RECEIVED", result=b"")).inserted_primary_key[0]


def finish_declaration(connection: Connection, declaration_id: int, *, status: str, result: bytes) -> None:
    connection.execute(update(t.declaration).where(t.declaration.c.id == declaration_id)
                       .values(status=status, result=result))


def find_by_key(connection: Connection, sender_id: str, message_id: str) -> StoredResult | None:
    k, d = t.message_key, t.declaration
    row = connection.execute(
        select(k.c.declaration_id, k.c.content_sha256, d.c.status, d.c.result)
        .join(d, d.c.id == k.c.declaration_id)
        .where(k.c.sender_id == sender_id, k.c.message_id == message_id)).first()
    return StoredResult(row.declaration_id, row.content_sha256, row.status, row.result) if row else None


def reserve_key(connection: Connection, sender_id: str, message_id: str, declaration_id: int, sha256: str) -> bool:
    """Take ``(SenderId, MessageId)`` for ever; False if another transaction took it first."""
    # RETURNING rather than rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING.
    taken = connection.execute(insert_ignoring_duplicates(connection, t.message_key).values(
        sender_id=sender_id, message_id=message_id, declaration_id=declaration_id, content_sha256=sha256)
        .returning(t.message_key.c.declaration_id)).first()
    return taken is not None




# --- facts -----------------------------------------------------------------

def ensure_persons(connection: Connection, inss_list) -> None:
    rows = [{"inss": inss} for inss in sorted(set(inss_list))]
    if rows:
        connection.execute(insert_ignoring_duplicates(connection, t.person), rows)




def store_dimona(connection: Connection, dimona: Dimona, declaration_id: int, scope: str) -> int:
    """Apply an accepted Dimona; returns the PeriodId it concerns."""
    action = dimona.action
    p = t.employment_period
    if isinstance(action, DimonaIn):
        ensure_persons(connection, [action.inss])
        period_id = connection.execute(insert(p).values(
            scope=scope, employer_noss=dimona.employer.noss, inss=action.inss, worker_type=action.worker_type,
            starting_date=action.starting_date, ending_date=action.ending_date,
            joint_commission=action.joint_commission, planned_hours=action.planned_hours, cancelled=False,
            version=1)).inserted_primary_key[0]
        _version(connection, period_id, 1, declaration_id, "IN", action.starting_date, action.ending_date,
                 action.joint_commission, action.planned_hours, False)
        return period_id
    current = StoredView(connection, scope).period(action.period_id)
    assert current is not None, "the rules checked the period exists"
    if isinstance(action, DimonaOut):
        changed, label = apply_out(current, action), "OUT"
    elif isinstance(action, DimonaUpdate):
        changed, label = apply_update(current, action), "UPDATE"
    else:
        changed, label = apply_cancel(current), "CANCEL"
    version = current.version + 1
    connection.execute(update(p).where(p.c.period_id == current.period_id).values(
        starting_date=changed.starting_date, ending_date=changed.ending_date,
        joint_commission=changed.joint_commission, planned_hours=changed.planned_hours,
        cancelled=changed.cancelled, version=version))
    _version(connection, current.period_id, version, declaration_id, label, changed.starting_date,
             changed.ending_date, changed.joint_commission, changed.planned_hours, changed.cancelled)
    return current.period_id


def _version(connection, period_id, version, declaration_id, action, start, end, jc, hours, cancelled) -> None:
    connection.execute(insert(t.employment_period_version).values(
        period_id=period_id, version=version, declaration_id=declaration_id, action=action, starting_date=start,
        ending_date=end, joint_commission=jc, planned_hours=hours, cancelled=cancelled))


def store_dmfa(connection: Connection, dmfa: DmfA, declaration_id: int, scope: str) -> None:
    """Insert an accepted DmfA with all its children: one bulk write per table.

    A DmfA of 1,000 workers is some 6,000 child rows. Rows are plain tuples
    (no per-row dict for SQLAlchemy to walk); on PostgreSQL they go in with
    COPY (one round trip per table, parsed by the server in bulk: per-row
    executemany was the largest single cost of a batch), on SQLite with the
    driver's executemany (in-process, already cheap). Same transaction as
    the rest of the declaration either way.
    """
    _ensure_dmfa_persons(connection, [p.inss for p in dmfa.persons])
    d = t.dmfa
    if dmfa.declaration_type == "REPLACEMENT":
        connection.execute(update(d).where(d.c.declaration_id == dmfa.replaces).values(
            is_current=False, replaced_by_declaration_id=declaration_id))
    connection.execute(insert(d).values(
        declaration_id=declaration_id, scope=scope, employer_noss=dmfa.employer.noss, quarter=dmfa.quarter.code,
        declaration_type=dmfa.declaration_type, replaces_declaration_id=dmfa.replaces, is_current=True,
        net_owed_amount=dmfa.net_owed_amount))
    persons, records, occupations, services, remuns, contributions = [], [], [], [], [], []
    for person in dmfa.persons:
        p_nbr = person.sequence
        persons.append((declaration_id, p_nbr, person.inss))
        for record_nbr, record in enumerate(person.worker_records, 1):
            records.append((declaration_id, p_nbr, record_nbr, record.worker_code))
            for o in record.occupations:
                o_nbr = o.sequence
                occupations.append((declaration_id, p_nbr, record_nbr, o_nbr, o.starting_date, o.ending_date,
                                    o.joint_commission, o.working_days_system, o.mean_working_hours,
                                    o.ref_mean_working_hours))
                services += [(declaration_id, p_nbr, record_nbr, o_nbr, i, s.code, s.days, s.hours)
                             for i, s in enumerate(o.services, 1)]
                remuns += [(declaration_id, p_nbr, record_nbr, o_nbr, i, r.code, r.amount)
                           for i, r in enumerate(o.remuns, 1)]
            contributions += [(declaration_id, p_nbr, record_nbr, i, c.code, c.base, c.amount)
                              for i, c in enumerate(record.contributions, 1)]
    # Parents before children (foreign keys).
    for table, rows in ((t.dmfa_person, persons), (t.dmfa_worker_record, records),
                        (t.dmfa_occupation, occupations), (t.dmfa_service, services),
                        (t.dmfa_remuneration, remuns), (t.dmfa_contribution, contributions)):
        _bulk_insert(connection, table, rows)


_DMFA_COLUMNS = {
    "dmfa_person": ("declaration_id", "person_nbr", "inss"),
    "dmfa_worker_record": ("declaration_id", "person_nbr", "record_nbr", "worker_code"),
    "dmfa_occupation": ("declaration_id", "person_nbr", "record_nbr", "occupation_nbr", "starting_date",
                        "ending_date", "joint_commission", "working_days_system", "mean_working_hours",
                        "ref_mean_working_hours"),
    "dmfa_service": ("declaration_id", "person_nbr", "record_nbr", "occupation_nbr", "position", "code", "days",
                     "hours"),
    "dmfa_remuneration": ("declaration_id", "person_nbr", "record_nbr", "occupation_nbr", "position", "code",
                          "amount"),
    "dmfa_contribution": ("declaration_id", "person_nbr", "record_nbr", "position", "code", "base", "amount"),
}


def _bulk_insert(connection: Connection, table, rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples in _DMFA_COLUMNS order) into ``table`` in the caller's transaction."""
    if not rows:
        return
    columns = _DMFA_COLUMNS[table.name]
    for name in columns:  # the names are ours, but never let a typo reach SQL text silently
        table.c[name]
    names = ", ".join(columns)
    if is_sqlite(connection):
        # Dates as SQLAlchemy's Date type stores them on SQLite (ISO text), not via sqlite3's
        # deprecated default adapter.
        rows = [tuple(v.isoformat() if isinstance(v, dt.date) else v for v in row) for row in rows] \
            if table is t.dmfa_occupation else rows
        marks = ", ".join("?" * len(columns))
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
        return
    # The DBAPI connection under this SQLAlchemy connection: same session, same transaction.
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _ensure_dmfa_persons(connection: Connection, inss_list: list[str]) -> None:
    """The DmfA's workers in ``person`` (most are there already): one statement on PostgreSQL
    (an array, unnested), the driver's executemany on SQLite."""
    unique = sorted(set(inss_list))
    if not unique:
        return
    if is_sqlite(connection):
        connection.exec_driver_sql("INSERT OR IGNORE INTO person (inss) VALUES (?)", [(i,) for i in unique])
        return
    connection.execute(text("INSERT INTO person (inss) SELECT unnest(CAST(:inss AS varchar[])) "
                            "ON CONFLICT DO NOTHING"), {"inss": unique})


def store_social_risk(connection: Connection, risk: SocialRisk, declaration_id: int, scope: str,
                      reference: ReferenceData | None, source: str) -> None:
    """Insert an accepted social risk with its ReferenceData (DECLARED, DERIVED or NONE)."""
    ensure_persons(connection, [risk.inss])
    details = {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in risk.data.items()}
    connection.execute(insert(t.social_risk).values(
        declaration_id=declaration_id, scope=scope, employer_noss=risk.employer.noss, inss=risk.inss,
        scenario=risk.scenario.code, sector=risk.scenario.sector, event_date=risk.event_date,
        same_event_key=risk.same_event_key, details=json.dumps(details, sort_keys=True),
        ref_quarterly_gross_remun=reference.quarterly_gross_remun if reference else None,
        ref_working_time_fraction=reference.working_time_fraction if reference else None,
        ref_joint_commission=reference.joint_commission if reference else None,
        reference_source=source))
