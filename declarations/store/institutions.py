"""The institutions' tables (institutions.md): register, subscriptions,
notifications, MessageIds, the access log, and the reads behind Consult.

Every function runs in the caller's transaction. Reads are few and indexed
(the benchmark is a million persons at 300 Consults/s): on PostgreSQL a
request's first statement (``open_request``) checks the signing certificate,
claims the MessageId and, for a Consult of DIMONA or DMFA, reads the register
basis and the data too; the access-log append is the second and last. SQLite
runs the same steps as plain statements.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from sqlalchemy import and_, delete, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from declarations.domain.access import RegisterEntry
from declarations.domain.access_log import LogEntry, content_around_chain, sealed
from declarations.domain.directory import DirectoryAuthorization
from declarations.domain.model import Quarter
from declarations.domain.scenarios import BY_CODE
from declarations.store import tables as t
from declarations.store.database import insert_ignoring_duplicates, is_sqlite

CHUNK = 500  # INSS per IN (...) list


def _dialect_insert(connection: Connection, table):
    if is_sqlite(connection):
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    return dialect_insert(table)


# --- MessageIds (A005) --------------------------------------------------------

def claim_message(connection: Connection, institution_id: str, message_id: str) -> bool:
    """Take the MessageId for this institution for ever; False if it was already used.

    A concurrent request with the same MessageId waits on the key until the
    first commits (then finds it taken) or rolls back (then takes it)."""
    m = t.institution_message
    taken = connection.execute(insert_ignoring_duplicates(connection, m).values(
        institution_id=institution_id, message_id=message_id).returning(m.c.message_id)).first()
    return taken is not None


# --- a request's first statement -----------------------------------------------

@dataclass(frozen=True)
class ConsultAsk:
    """What a Consult asks, for ``open_request`` to read its basis (and its data, on PostgreSQL)."""
    inss: str
    data_type: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class PeriodRow:
    period_id: int
    declaration_id: int
    employer_noss: str
    worker_type: str
    joint_commission: str
    starting_date: dt.date
    ending_date: dt.date | None
    planned_hours: int | None


@dataclass(frozen=True)
class Opened:
    """What a request's first step found and took."""
    trusted: bool          # the signing certificate is registered for the institution (True when not asked)
    claimed: bool          # the MessageId is now this request's (A005 otherwise, when trusted and valid)
    entries: list[RegisterEntry] | None = None                  # Consult: the person's register entries
    authorizations: list[DirectoryAuthorization] | None = None  # Consult: in those entries' capacities
    # Consult on PostgreSQL: the data of the span the institution's authorized register entries for the person
    # could grant within the asked window, read in the same statement (the desk still decides and cuts to the
    # exact days): DIMONA periods or DMFA quarters. None: not read, the desk reads what it grants.
    periods: list[PeriodRow] | None = None
    quarters: list[StoredQuarter] | None = None


def open_request(connection: Connection, institution_id: str, message_id: str, *, fingerprint: str | None,
                 reserve: bool, consult: ConsultAsk | None = None) -> Opened:
    """A request's first step: is the signing certificate (SHA-256 ``fingerprint``; None: already checked)
    registered for the institution; if so and ``reserve`` (the caller found it valid now), claim the
    MessageId (A005); for a claimed Consult, read ``consult_basis``. On PostgreSQL in one statement, which
    for DIMONA and DMFA also reads the data of the span that may be granted (``_PG_ALLOWED``); on
    SQLite (one writer at a time) as separate statements."""
    if is_sqlite(connection):
        trusted = fingerprint is None or fingerprint in institution_fingerprints(connection, institution_id)
        claimed = trusted and reserve and claim_message(connection, institution_id, message_id)
        if consult is None or not claimed:
            return Opened(trusted, claimed)
        entries, authorizations = consult_basis(connection, institution_id, consult.inss, consult.data_type)
        return Opened(trusted, claimed, entries, authorizations)
    params = dict(institution_id=institution_id, message_id=message_id, fingerprint=fingerprint, reserve=reserve)
    if consult is not None:
        params.update(inss=consult.inss, data_type=consult.data_type, start=consult.start, end=consult.end)
    kind = None if consult is None else consult.data_type if consult.data_type in _PG_DATA else ""
    rows = connection.execute(_PG_OPEN[kind], params).all()
    trusted = claimed = False
    entries, authorized = [], set()
    periods, records, children = [], [], {"services": [], "remunerations": []}
    for row in rows:
        what = row.what
        if what == "trusted":
            trusted = True
        elif what == "claimed":
            claimed = True
        elif what == "entry":
            entries.append(RegisterEntry(institution_id, consult.inss, row.t1, row.d1, row.d2))
            if row.t2 is not None:
                authorized.add(row.t1)
        elif what == "period":
            periods.append(PeriodRow(row.n1, row.n2, row.t1, row.t2, row.t3, row.d1, row.d2, row.n3))
        elif what == "record":
            records.append(_Record(row.n1, row.t1, row.n2, row.n3, row.n4, row.t2, row.n5, row.d1, row.d2, row.t3,
                                   row.n6, row.n7, row.n8))
        elif what == "service":
            children["services"].append(_Service(row.n1, row.n2, row.n3, row.n4, row.n5, row.t1, row.n6, row.n7))
        elif what == "remuneration":
            children["remunerations"].append(_Remuneration(row.n1, row.n2, row.n3, row.n4, row.n5, row.t1, row.n6))
    if consult is None or not claimed:
        return Opened(trusted, claimed)
    entries.sort(key=lambda e: (e.valid_from, e.capacity))
    authorizations = [DirectoryAuthorization(institution_id, capacity, consult.data_type)
                      for capacity in sorted(authorized)]
    if kind == "DIMONA":
        periods.sort(key=lambda p: (p.starting_date, p.period_id))
        return Opened(trusted, claimed, entries, authorizations, periods=periods)
    if kind == "DMFA":
        records.sort(key=lambda r: (r.quarter, r.employer_noss, r.declaration_id, r.person_nbr, r.record_nbr,
                                    -1 if r.occupation_nbr is None else r.occupation_nbr))
        for rows_of in children.values():
            rows_of.sort(key=lambda c: (c.declaration_id, c.person_nbr, c.record_nbr, c.occupation_nbr, c.position))
        return Opened(trusted, claimed, entries, authorizations, quarters=_quarters(records, children))
    return Opened(trusted, claimed, entries, authorizations)


@dataclass(frozen=True)
class _Record:
    declaration_id: int
    employer_noss: str
    quarter: int
    person_nbr: int
    record_nbr: int
    worker_code: str
    occupation_nbr: int | None
    starting_date: dt.date | None
    ending_date: dt.date | None
    joint_commission: str | None
    working_days_system: int | None
    mean_working_hours: int | None
    ref_mean_working_hours: int | None


@dataclass(frozen=True)
class _Service:
    declaration_id: int
    person_nbr: int
    record_nbr: int
    occupation_nbr: int
    position: int
    code: str
    days: int
    hours: int | None


@dataclass(frozen=True)
class _Remuneration:
    declaration_id: int
    person_nbr: int
    record_nbr: int
    occupation_nbr: int
    position: int
    code: str
    amount: int


# One row shape for every part of the answer (``what`` says which): three texts, two dates, eight numbers.
_NULLS = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
_PG_OPEN_SQL = """
WITH trusted AS (
    SELECT 1 AS one
     WHERE CAST(:fingerprint AS varchar) IS NULL
        OR EXISTS (SELECT 1 FROM institution_certificate
                    WHERE institution_id = CAST(:institution_id AS varchar) AND fingerprint = :fingerprint)),
claimed AS (
    INSERT INTO institution_message (institution_id, message_id)
    SELECT CAST(:institution_id AS varchar), CAST(:message_id AS varchar) FROM trusted
     WHERE CAST(:reserve AS boolean)
    ON CONFLICT DO NOTHING
    RETURNING 1 AS one){ctes}
SELECT 'trusted' AS what, NULL::varchar AS t1, NULL::varchar AS t2, NULL::varchar AS t3, NULL::date AS d1,
       NULL::date AS d2, NULL::bigint AS n1, NULL::bigint AS n2, NULL::bigint AS n3, NULL::bigint AS n4,
       NULL::bigint AS n5, NULL::bigint AS n6, NULL::bigint AS n7, NULL::bigint AS n8 FROM trusted
UNION ALL SELECT 'claimed', {nulls} FROM claimed{parts}
"""
# Consult: the register basis (consult_basis, spelled out), once the MessageId is claimed.
_PG_BASIS = """
UNION ALL SELECT 'entry', r.capacity, a.data_type, NULL, r.valid_from, r.valid_to,
                 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM register_entry r
    LEFT JOIN "authorization" a ON a.institution_id = r.institution_id AND a.capacity = r.capacity
                               AND a.data_type = CAST(:data_type AS varchar)
   WHERE r.institution_id = CAST(:institution_id AS varchar) AND r.inss = CAST(:inss AS varchar)
     AND EXISTS (SELECT 1 FROM claimed)"""
# The data is read only for the days some register entry of the institution for the person, in a capacity
# authorized for the data type, could grant: never for a person the institution does not follow, nothing
# when the window misses every authorized register period (A003). ``allowed`` is the span [lo, hi] of those
# days (the desk cuts to the exact days, as on SQLite, where it reads that span).
_PG_ALLOWED = """,
allowed AS (
    SELECT MIN(GREATEST(r.valid_from, CAST(:start AS date))) AS lo,
           MAX(LEAST(COALESCE(r.valid_to, CAST(:end AS date)), CAST(:end AS date))) AS hi
      FROM claimed, register_entry r
      JOIN "authorization" a ON a.institution_id = r.institution_id AND a.capacity = r.capacity
                            AND a.data_type = CAST(:data_type AS varchar)
     WHERE r.institution_id = CAST(:institution_id AS varchar) AND r.inss = CAST(:inss AS varchar)
       AND r.valid_from <= CAST(:end AS date) AND (r.valid_to IS NULL OR r.valid_to >= CAST(:start AS date))
    HAVING COUNT(*) > 0)"""
# current_periods for the span that may be granted.
_PG_PERIODS = """
UNION ALL SELECT 'period', p.employer_noss, p.worker_type, p.joint_commission, p.starting_date, p.ending_date,
                 p.period_id, v.declaration_id, p.planned_hours, NULL, NULL, NULL, NULL, NULL
    FROM allowed, employment_period p
    JOIN employment_period_version v ON v.period_id = p.period_id AND v.version = p.version
   WHERE p.inss = CAST(:inss AS varchar) AND p.scope = 'PROD' AND NOT p.cancelled
     AND p.starting_date <= allowed.hi AND (p.ending_date IS NULL OR p.ending_date >= allowed.lo)"""
# current_quarters for the quarters of the span that may be granted: the worker records with their occupations,
# then each occupation's services and remunerations, one row per element of its arrays (WITH ORDINALITY: the
# element's place, its position in the declaration).
_PG_RECORDS = """,
records AS (
    SELECT d.declaration_id, d.employer_noss, d.quarter, dp.person_nbr, w.record_nbr, w.worker_code,
           o.occupation_nbr, o.starting_date, o.ending_date, o.joint_commission, o.working_days_system,
           o.mean_working_hours, o.ref_mean_working_hours, o.service_codes, o.service_days, o.service_hours,
           o.remuneration_codes, o.remuneration_amounts
      FROM allowed, dmfa_person dp
      JOIN dmfa d ON d.declaration_id = dp.declaration_id
      LEFT JOIN dmfa replacement ON replacement.declaration_id = d.replaced_by_declaration_id
      JOIN dmfa_worker_record w ON w.declaration_id = dp.declaration_id AND w.person_nbr = dp.person_nbr
      LEFT JOIN dmfa_occupation o ON o.declaration_id = w.declaration_id AND o.person_nbr = w.person_nbr
                                 AND o.record_nbr = w.record_nbr
     WHERE dp.inss = CAST(:inss AS varchar) AND d.scope = 'PROD'
       AND d.quarter >= 10 * EXTRACT(YEAR FROM allowed.lo) + EXTRACT(QUARTER FROM allowed.lo)
       AND d.quarter <= 10 * EXTRACT(YEAR FROM allowed.hi) + EXTRACT(QUARTER FROM allowed.hi)
       AND (replacement.declaration_id IS NULL OR replacement.scope <> 'PROD'))"""
_PG_QUARTERS = """
UNION ALL SELECT 'record', employer_noss, worker_code, joint_commission, starting_date, ending_date,
                 declaration_id, quarter, person_nbr, record_nbr, occupation_nbr, working_days_system,
                 mean_working_hours, ref_mean_working_hours
    FROM records
UNION ALL SELECT 'service', s.code, NULL, NULL, NULL, NULL, r.declaration_id, r.person_nbr, r.record_nbr,
                 r.occupation_nbr, s.position, s.days, s.hours, NULL
    FROM records r, unnest(r.service_codes, r.service_days, r.service_hours)
                    WITH ORDINALITY AS s(code, days, hours, position)
UNION ALL SELECT 'remuneration', m.code, NULL, NULL, NULL, NULL, r.declaration_id, r.person_nbr, r.record_nbr,
                 r.occupation_nbr, m.position, m.amount, NULL, NULL
    FROM records r, unnest(r.remuneration_codes, r.remuneration_amounts) WITH ORDINALITY AS m(code, amount, position)"""
_PG_DATA = {"DIMONA": (_PG_ALLOWED, _PG_PERIODS), "DMFA": (_PG_ALLOWED + _PG_RECORDS, _PG_QUARTERS)}
# By what is read with the claim: None (not a Consult), "" (a Consult, basis only), "DIMONA", "DMFA".
_PG_OPEN = {None: text(_PG_OPEN_SQL.format(ctes="", nulls=_NULLS, parts="")),
            "": text(_PG_OPEN_SQL.format(ctes="", nulls=_NULLS, parts=_PG_BASIS)),
            **{kind: text(_PG_OPEN_SQL.format(ctes=ctes, nulls=_NULLS, parts=_PG_BASIS + parts))
               for kind, (ctes, parts) in _PG_DATA.items()}}


# --- directory reads ----------------------------------------------------------

def authorizations(connection: Connection, institution_id: str | None = None) -> list[DirectoryAuthorization]:
    """The public table in directory order, or one institution's part of it."""
    a = t.authorization
    query = select(a.c.institution_id, a.c.capacity, a.c.data_type).order_by(a.c.position)
    if institution_id is not None:
        query = query.where(a.c.institution_id == institution_id)
    return [DirectoryAuthorization(r.institution_id, r.capacity, r.data_type) for r in connection.execute(query)]


def institution_fingerprints(connection: Connection, institution_id: str) -> tuple[str, ...]:
    c = t.institution_certificate
    return tuple(connection.execute(select(c.c.fingerprint).where(c.c.institution_id == institution_id)
                                    .order_by(c.c.position)).scalars())


# --- the integration register ---------------------------------------------------

def consult_basis(connection: Connection, institution_id: str, inss: str,
                  data_type: str) -> tuple[list[RegisterEntry], list[DirectoryAuthorization]]:
    """What decide_consult needs, in one statement: the institution's entries for the person, and
    its authorizations for the data type in those entries' capacities (the only ones that matter)."""
    r, a = t.register_entry, t.authorization
    rows = connection.execute(
        select(r.c.capacity, r.c.valid_from, r.c.valid_to, a.c.data_type)
        .outerjoin(a, and_(a.c.institution_id == r.c.institution_id, a.c.capacity == r.c.capacity,
                           a.c.data_type == data_type))
        .where(r.c.institution_id == institution_id, r.c.inss == inss)
        .order_by(r.c.valid_from, r.c.capacity)).all()
    entries = [RegisterEntry(institution_id, inss, x.capacity, x.valid_from, x.valid_to) for x in rows]
    authorized = {x.capacity for x in rows if x.data_type is not None}
    return entries, [DirectoryAuthorization(institution_id, capacity, data_type) for capacity in sorted(authorized)]


def put_register_entry(connection: Connection, entry: RegisterEntry) -> RegisterEntry | None:
    """Insert the entry, or set the To of the entry with the same INSS, Capacity and From.
    Returns the entry as it stood before (None: it is new)."""
    r = t.register_entry
    key = and_(r.c.institution_id == entry.institution_id, r.c.inss == entry.inss, r.c.capacity == entry.capacity,
               r.c.valid_from == entry.valid_from)
    before = connection.execute(select(r.c.valid_to).where(key)).first()
    if before is None:
        connection.execute(insert(r).values(institution_id=entry.institution_id, inss=entry.inss,
                                            capacity=entry.capacity, valid_from=entry.valid_from,
                                            valid_to=entry.valid_to))
        return None
    if before.valid_to != entry.valid_to:
        connection.execute(update(r).where(key).values(valid_to=entry.valid_to))
    return RegisterEntry(entry.institution_id, entry.inss, entry.capacity, entry.valid_from, before.valid_to)


def remove_register_entry(connection: Connection, institution_id: str, inss: str, capacity: str,
                          valid_from: dt.date) -> RegisterEntry | None:
    """Delete the entry; returns it as it was (None: there was none)."""
    r = t.register_entry
    gone = connection.execute(delete(r).where(
        r.c.institution_id == institution_id, r.c.inss == inss, r.c.capacity == capacity,
        r.c.valid_from == valid_from).returning(r.c.valid_to)).first()
    return None if gone is None else RegisterEntry(institution_id, inss, capacity, valid_from, gone.valid_to)


# --- subscriptions and notifications ------------------------------------------

def subscribe(connection: Connection, institution_id: str, data_type: str) -> None:
    connection.execute(insert_ignoring_duplicates(connection, t.subscription).values(
        institution_id=institution_id, data_type=data_type))


def unsubscribe(connection: Connection, institution_id: str, data_type: str) -> None:
    s = t.subscription
    connection.execute(delete(s).where(s.c.institution_id == institution_id, s.c.data_type == data_type))


def anyone_subscribed(connection: Connection, data_type: str) -> bool:
    s = t.subscription
    return connection.execute(select(s.c.institution_id).where(s.c.data_type == data_type).limit(1)).first() \
        is not None


@dataclass(frozen=True)
class Due:
    """One person a declaration concerns, as ``notify`` worked it out: each subscribed institution that
    holds them in an authorized capacity on some day of [match_start, match_end] gets a notification."""
    inss: str
    start: dt.date             # the period reported (after the change)
    end: dt.date | None
    match_start: dt.date       # the days register entries are matched on (before and after a change)
    match_end: dt.date | None
    change: str                # NEW | UPDATED | REPLACED | CANCELLED


def add_notifications(connection: Connection, data_type: str, declaration_id: int, due: list[Due],
                      now: dt.datetime, *, replaced: tuple[int, Quarter] | None = None) -> None:
    """Find who is to be notified about ``due`` and write it, numbered from each institution's counter.

    ``replaced``: a replacement DmfA's (replaced declaration, quarter): the persons the replaced DmfA
    named and ``due`` does not are notified too, REPLACED, after those of ``due``.

    Per institution, the Sequences follow the order of ``due``. The counter row
    is bumped in institution order (two declarations never wait on each
    other's rows crosswise) and stays locked until the declaration commits or
    rolls back, so the numbers are given out with no gap and become visible in
    commit order. On PostgreSQL all of it (the replaced persons, the holders,
    every counter, every row) is one statement, whatever the number of persons
    (one person: a simpler one, cheaper to plan); SQLite (in-process, one
    writer) runs plain statements."""
    if not due and replaced is None:
        return
    if not is_sqlite(connection) and len(due) == 1 and replaced is None:
        d = due[0]
        connection.execute(_PG_NOTIFY_ONE, {
            "inss": d.inss, "start": d.start, "end": d.end, "match_start": d.match_start, "match_end": d.match_end,
            "change": d.change, "data_type": data_type, "suffix": ":" + data_type, "declaration_id": declaration_id,
            "now": now})
        return
    if not is_sqlite(connection):
        quarter = replaced[1] if replaced else None
        connection.execute(_PG_NOTIFY, {
            "inss": [d.inss for d in due], "starts": [d.start for d in due], "ends": [d.end for d in due],
            "match_starts": [d.match_start for d in due], "match_ends": [d.match_end for d in due],
            "changes": [d.change for d in due], "data_type": data_type, "suffix": ":" + data_type,
            "declaration_id": declaration_id, "now": now, "replaced": replaced[0] if replaced else None,
            "first_day": quarter.first_day if quarter else None, "last_day": quarter.last_day if quarter else None})
        return
    if replaced is not None:
        named = {d.inss for d in due}
        q = replaced[1]
        due = due + [Due(inss, q.first_day, q.last_day, q.first_day, q.last_day, "REPLACED")
                     for inss in dict.fromkeys(dmfa_persons(connection, replaced[0])) if inss not in named]
    found = _holders(connection, data_type, (d.inss for d in due))
    by_institution: dict[str, list[tuple[Due, str]]] = defaultdict(list)
    for d in due:
        capacities: dict[str, set[str]] = defaultdict(set)
        for institution_id, capacity, valid_from, valid_to in found.get(d.inss, ()):
            if (d.match_end is None or valid_from <= d.match_end) and (valid_to is None or d.match_start <= valid_to):
                capacities[institution_id].add(capacity)
        for institution_id, held in capacities.items():
            # in code-point order, as PostgreSQL's COLLATE "C" has it
            by_institution[institution_id].append((d, ",".join(sorted(f"{c}:{data_type}" for c in held))))
    q = t.institution_sequence
    rows = []
    for institution_id in sorted(by_institution):
        batch = by_institution[institution_id]
        upsert = _dialect_insert(connection, q).values(institution_id=institution_id, last_sequence=len(batch))
        last = connection.execute(upsert.on_conflict_do_update(
            index_elements=[q.c.institution_id], set_={"last_sequence": q.c.last_sequence + len(batch)})
            .returning(q.c.last_sequence)).scalar_one()
        for sequence, (d, authorization) in enumerate(batch, last - len(batch) + 1):
            rows.append({"institution_id": institution_id, "sequence": sequence, "inss": d.inss,
                         "data_type": data_type, "declaration_id": declaration_id, "change": d.change,
                         "period_start": d.start, "period_end": d.end, "created_at": now,
                         "authorization": authorization})
    if rows:
        connection.execute(insert(t.notification), rows)


def _holders(connection: Connection, data_type: str, inss_list: Iterable[str]) -> dict[str, list[tuple]]:
    """Register entries of subscribed institutions in a capacity authorized for the data type, by INSS:
    (institution, capacity, from, to); one query per 500 INSS (SQLite)."""
    r, s, a = t.register_entry, t.subscription, t.authorization
    found: dict[str, list[tuple]] = defaultdict(list)
    inss_list = sorted(set(inss_list))
    for start in range(0, len(inss_list), CHUNK):
        rows = connection.execute(
            select(r.c.institution_id, r.c.inss, r.c.capacity, r.c.valid_from, r.c.valid_to)
            .join(s, and_(s.c.institution_id == r.c.institution_id, s.c.data_type == data_type))
            .join(a, and_(a.c.institution_id == r.c.institution_id, a.c.capacity == r.c.capacity,
                          a.c.data_type == data_type))
            .where(r.c.inss.in_(inss_list[start:start + CHUNK])))
        for row in rows:
            found[row.inss].append((row.institution_id, row.capacity, row.valid_from, row.valid_to))
    return found


# One person (a Dimona, a social risk): the same in scalar parameters, no arrays, about half the time of
# _PG_NOTIFY below (planning dominates at this size). Every institution's counter in one multi-row upsert,
# in institution order (the lock order); the counter rows stay locked to commit.
_PG_NOTIFY_ONE = text("""
WITH due AS (
    SELECT e.institution_id,
           string_agg(DISTINCT e.capacity || CAST(:suffix AS text) COLLATE "C", ','
                      ORDER BY e.capacity || CAST(:suffix AS text) COLLATE "C")
               AS "authorization"
      FROM register_entry e
      JOIN subscription s ON s.institution_id = e.institution_id AND s.data_type = :data_type
      JOIN "authorization" a ON a.institution_id = e.institution_id AND a.capacity = e.capacity
                            AND a.data_type = :data_type
     WHERE e.inss = :inss AND (CAST(:match_end AS date) IS NULL OR e.valid_from <= CAST(:match_end AS date))
       AND (e.valid_to IS NULL OR CAST(:match_start AS date) <= e.valid_to)
     GROUP BY e.institution_id),
bumped AS (
    INSERT INTO institution_sequence AS q (institution_id, last_sequence)
    SELECT institution_id, 1 FROM due ORDER BY institution_id
    ON CONFLICT (institution_id) DO UPDATE SET last_sequence = q.last_sequence + 1
    RETURNING q.institution_id, q.last_sequence)
INSERT INTO notification (institution_id, sequence, inss, data_type, declaration_id, change, period_start,
                          period_end, created_at, "authorization")
SELECT d.institution_id, b.last_sequence, :inss, :data_type, :declaration_id, :change, :start, :end, :now,
       d."authorization"
  FROM due d JOIN bumped b ON b.institution_id = d.institution_id
""")


# The same as SQLite's steps, as one statement. ``item``: the persons in order (the replaced DmfA's other
# persons after them, by first PersonNbr); ``due``: one row per (institution, person) with the authorized
# capacities whose register entries overlap the matched days; ``bumped``: every institution's counter in one
# multi-row upsert, in institution order (the lock order), each by its number of rows; then the rows,
# numbered last - n + 1 .. last per institution in person order. The counter rows stay locked to commit.
# ``holder`` probes the register by INSS (ix_register_entry_inss, one index scan for all the persons): joined
# to ``item`` directly, the planner hashed every register entry of the subscribed institutions instead.
_PG_NOTIFY = text("""
WITH given AS (
    SELECT * FROM unnest(CAST(:inss AS text[]), CAST(:starts AS date[]), CAST(:ends AS date[]),
                         CAST(:match_starts AS date[]), CAST(:match_ends AS date[]), CAST(:changes AS text[]))
           WITH ORDINALITY AS g(inss, period_start, period_end, match_start, match_end, change, position)),
item AS (
    SELECT inss, period_start, period_end, match_start, match_end, change, position FROM given
    UNION ALL
    SELECT r.inss, CAST(:first_day AS date), CAST(:last_day AS date), CAST(:first_day AS date),
           CAST(:last_day AS date), 'REPLACED',
           (SELECT count(*) FROM given) + row_number() OVER (ORDER BY r.first_nbr)
      FROM (SELECT dp.inss, min(dp.person_nbr) AS first_nbr FROM dmfa_person dp
             WHERE dp.declaration_id = CAST(:replaced AS bigint) AND dp.inss NOT IN (SELECT inss FROM given)
             GROUP BY dp.inss) r),
holder AS (
    SELECT e.institution_id, e.inss, e.capacity, e.valid_from, e.valid_to
      FROM register_entry e
      JOIN subscription s ON s.institution_id = e.institution_id AND s.data_type = :data_type
      JOIN "authorization" a ON a.institution_id = e.institution_id AND a.capacity = e.capacity
                            AND a.data_type = :data_type
     WHERE e.inss = ANY(ARRAY(SELECT inss FROM item))),
due AS (
    SELECT h.institution_id, i.position,
           string_agg(DISTINCT h.capacity || CAST(:suffix AS text) COLLATE "C", ','
                      ORDER BY h.capacity || CAST(:suffix AS text) COLLATE "C")
               AS "authorization"
      FROM item i
      JOIN holder h ON h.inss = i.inss AND (i.match_end IS NULL OR h.valid_from <= i.match_end)
                   AND (h.valid_to IS NULL OR i.match_start <= h.valid_to)
     GROUP BY h.institution_id, i.position),
counted AS (
    SELECT institution_id, count(*) AS n FROM due GROUP BY institution_id),
bumped AS (
    INSERT INTO institution_sequence AS q (institution_id, last_sequence)
    SELECT institution_id, n FROM counted ORDER BY institution_id
    ON CONFLICT (institution_id) DO UPDATE SET last_sequence = q.last_sequence + EXCLUDED.last_sequence
    RETURNING q.institution_id, q.last_sequence)
INSERT INTO notification (institution_id, sequence, inss, data_type, declaration_id, change, period_start,
                          period_end, created_at, "authorization")
SELECT d.institution_id,
       b.last_sequence - c.n + row_number() OVER (PARTITION BY d.institution_id ORDER BY d.position),
       i.inss, :data_type, :declaration_id, i.change, i.period_start, i.period_end, :now, d."authorization"
  FROM due d
  JOIN item i ON i.position = d.position
  JOIN counted c ON c.institution_id = d.institution_id
  JOIN bumped b ON b.institution_id = d.institution_id
""")


def notifications_after(connection: Connection, institution_id: str, after: int, limit: int):
    n = t.notification
    return connection.execute(select(n).where(n.c.institution_id == institution_id, n.c.sequence > after)
                              .order_by(n.c.sequence).limit(limit)).all()


def last_sequence(connection: Connection, institution_id: str) -> int:
    q = t.institution_sequence
    return connection.execute(select(q.c.last_sequence).where(q.c.institution_id == institution_id)).scalar() or 0


def dmfa_persons(connection: Connection, declaration_id: int) -> list[str]:
    dp = t.dmfa_person
    return list(connection.execute(select(dp.c.inss).where(dp.c.declaration_id == declaration_id)
                                   .order_by(dp.c.person_nbr)).scalars())


# --- current PROD data for Consult ----------------------------------------------

def current_periods(connection: Connection, inss: str, start: dt.date, end: dt.date):
    """Non-cancelled PROD employment periods of the person overlapping [start, end], with the
    declaration that set their current version."""
    p, v = t.employment_period, t.employment_period_version
    return connection.execute(
        select(p.c.period_id, p.c.employer_noss, p.c.worker_type, p.c.joint_commission, p.c.starting_date,
               p.c.ending_date, p.c.planned_hours, v.c.declaration_id)
        .join(v, and_(v.c.period_id == p.c.period_id, v.c.version == p.c.version))
        .where(p.c.inss == inss, p.c.scope == t.PROD, p.c.cancelled.is_(False), p.c.starting_date <= end,
               or_(p.c.ending_date.is_(None), p.c.ending_date >= start))
        .order_by(p.c.starting_date, p.c.period_id)).all()


@dataclass
class StoredQuarter:
    declaration_id: int
    employer_noss: str
    quarter: int
    person_nbr: int
    record_nbr: int
    worker_code: str
    occupations: list


def current_quarters(connection: Connection, inss: str, first_quarter: int, last_quarter: int) -> list[StoredQuarter]:
    """The person's worker records in the current PROD DmfA of each employer and quarter in
    [first_quarter, last_quarter] (YYYYQ), with occupations, services and remunerations: one statement.

    Current for PROD readers: not replaced by a PROD replacement (a sender's TEST
    replacement marks the PROD DmfA it shadows as not current for that sender's tests)."""
    d, dp, w, o = t.dmfa, t.dmfa_person, t.dmfa_worker_record, t.dmfa_occupation
    by = d.alias("replacement")
    records = connection.execute(
        select(d.c.declaration_id, d.c.employer_noss, d.c.quarter, dp.c.person_nbr, w.c.record_nbr,
               w.c.worker_code, o.c.occupation_nbr, o.c.starting_date, o.c.ending_date, o.c.joint_commission,
               o.c.working_days_system, o.c.mean_working_hours, o.c.ref_mean_working_hours, o.c.service_codes,
               o.c.service_days, o.c.service_hours, o.c.remuneration_codes, o.c.remuneration_amounts)
        .select_from(dp)
        .join(d, d.c.declaration_id == dp.c.declaration_id)
        .outerjoin(by, by.c.declaration_id == d.c.replaced_by_declaration_id)
        .join(w, and_(w.c.declaration_id == dp.c.declaration_id, w.c.person_nbr == dp.c.person_nbr))
        .outerjoin(o, and_(o.c.declaration_id == w.c.declaration_id, o.c.person_nbr == w.c.person_nbr,
                           o.c.record_nbr == w.c.record_nbr))
        .where(dp.c.inss == inss, d.c.scope == t.PROD, d.c.quarter >= first_quarter, d.c.quarter <= last_quarter,
               or_(by.c.declaration_id.is_(None), by.c.scope != t.PROD))
        .order_by(d.c.quarter, d.c.employer_noss, d.c.declaration_id, dp.c.person_nbr, w.c.record_nbr,
                  o.c.occupation_nbr)).all()
    children = {"services": [], "remunerations": []}
    for r in records:
        if r.occupation_nbr is None:
            continue
        key = (r.declaration_id, r.person_nbr, r.record_nbr, r.occupation_nbr)
        children["services"] += [_Service(*key, position, code, days, hours) for position, (code, days, hours)
                                 in enumerate(zip(r.service_codes, r.service_days, r.service_hours), 1)]
        children["remunerations"] += [_Remuneration(*key, position, code, amount) for position, (code, amount)
                                      in enumerate(zip(r.remuneration_codes, r.remuneration_amounts), 1)]
    return _quarters(records, children)


def _quarters(records, children: dict[str, list]) -> list[StoredQuarter]:
    """StoredQuarters from the worker-record rows (with their occupations, in order) and the services and
    remunerations (by field name, in order)."""
    quarters: dict[tuple, StoredQuarter] = {}
    for r in records:
        key = (r.declaration_id, r.person_nbr, r.record_nbr)
        if key not in quarters:
            quarters[key] = StoredQuarter(r.declaration_id, r.employer_noss, r.quarter, r.person_nbr, r.record_nbr,
                                          r.worker_code, [])
        if r.occupation_nbr is not None:
            quarters[key].occupations.append(
                {"occupation_nbr": r.occupation_nbr, "start": r.starting_date, "end": r.ending_date,
                 "joint_commission": r.joint_commission, "working_days_system": r.working_days_system,
                 "mean_working_hours": r.mean_working_hours, "ref_mean_working_hours": r.ref_mean_working_hours,
                 "services": [], "remunerations": []})
    occupations = {(k[0], k[1], k[2], occ["occupation_nbr"]): occ for k, q in quarters.items() for occ in q.occupations}
    for field, rows in children.items():
        for row in rows:
            occupation = occupations.get((row.declaration_id, row.person_nbr, row.record_nbr, row.occupation_nbr))
            if occupation is not None:
                occupation[field].append(row)
    return list(quarters.values())


def social_risks(connection: Connection, inss: str, sector: str, start: dt.date, end: dt.date):
    """Accepted PROD social-risk declarations of the sector about the person, event date in [start, end]."""
    s = t.social_risk
    rows = connection.execute(
        select(s).where(s.c.inss == inss, s.c.scope == t.PROD, s.c.sector == sector, s.c.event_date >= start,
                        s.c.event_date <= end)
        .order_by(s.c.event_date, s.c.declaration_id)).all()
    return rows


def details_in_order(scenario: str, details_json: str) -> tuple[tuple[str, str], ...]:
    """The scenario's stored fields as (name, text), in catalogue order."""
    values = json.loads(details_json)
    out = []
    for f in BY_CODE[scenario].fields:
        value = values.get(f.name)
        if value is None:
            continue
        out.append((f.name, "true" if value is True else "false" if value is False else str(value)))
    return tuple(out)


# --- the access log -------------------------------------------------------------

def append_log(connection: Connection, entry: LogEntry) -> LogEntry:
    """Append one entry after the last, under the head row's lock (held to commit).

    ``entry.sequence`` and ``previous_hash`` are set here. The lock is the one
    place where concurrent requests queue, so it is held as briefly as
    possible: on PostgreSQL one statement takes it, seals the entry in SQL
    (sha256 of the same canonical text as ``chain_hash``, built around the
    previous hash and the sequence) and inserts it; then the commit. SQLite
    has one writer at a time anyway: three plain statements there."""
    if not is_sqlite(connection):
        a, b, c = content_around_chain(entry)
        values = _row(entry)
        row = connection.execute(_PG_APPEND, {**values, "a": a, "b": b, "c": c}).one()
        return replace(entry, sequence=row.sequence, previous_hash=row.previous_hash, hash=row.hash)
    h = t.access_log_head
    head = connection.execute(update(h).where(h.c.id == 1).values(sequence=h.c.sequence + 1)
                              .returning(h.c.sequence, h.c.hash)).one()
    done = sealed(replace(entry, sequence=head.sequence, previous_hash=head.hash, hash=""))
    connection.execute(insert(t.access_log).values(**_row(done)))
    connection.execute(update(h).where(h.c.id == 1).values(hash=done.hash, previous_hash=head.hash))
    return done


# In SET, every right-hand side reads the row as it was: previous_hash takes the old hash, and the
# new hash covers the old hash and the new sequence. The head row stays locked until commit.
_PG_APPEND = text("""
WITH head AS (
    UPDATE access_log_head
       SET sequence = sequence + 1, previous_hash = hash,
           hash = encode(sha256(convert_to(CAST(:a AS text) || hash || CAST(:b AS text)
                                           || CAST(sequence + 1 AS text) || CAST(:c AS text), 'UTF8')), 'hex')
     WHERE id = 1
    RETURNING sequence, previous_hash, hash)
INSERT INTO access_log (sequence, at, institution_id, operation, inss, data_type, "window", outcome,
                        "authorization", message_id, detail, previous_hash, hash)
SELECT sequence, :at, :institution_id, :operation, :inss, :data_type, :window, :outcome, :authorization,
       :message_id, :detail, previous_hash, hash FROM head
RETURNING sequence, previous_hash, hash
""")


def _row(entry: LogEntry) -> dict:
    return {"sequence": entry.sequence, "at": entry.at, "institution_id": entry.institution_id,
            "operation": entry.operation, "inss": entry.inss, "data_type": entry.data_type, "window": entry.window,
            "outcome": entry.outcome, "authorization": entry.authorization, "message_id": entry.message_id,
            "detail": entry.detail, "previous_hash": entry.previous_hash, "hash": entry.hash}


def _entry(row) -> LogEntry:
    return LogEntry(row.sequence, row.at, row.institution_id, row.operation, row.inss, row.data_type, row.window,
                    row.outcome, row.authorization, row.message_id, row.previous_hash, row.hash, row.detail)


def log_entries(connection: Connection, page: int = 5000) -> Iterator[LogEntry]:
    """Every entry in sequence order, a page at a time (the log may be long)."""
    a = t.access_log
    after = None
    while True:
        query = select(a).order_by(a.c.sequence).limit(page)
        if after is not None:
            query = query.where(a.c.sequence > after)
        rows = connection.execute(query).all()
        for row in rows:
            yield _entry(row)
        if len(rows) < page:
            return
        after = rows[-1].sequence


def log_head(connection: Connection) -> tuple[int, str]:
    h = t.access_log_head
    row = connection.execute(select(h.c.sequence, h.c.hash).where(h.c.id == 1)).one()
    return row.sequence, row.hash


def log_entries_about(connection: Connection, inss: str) -> list[LogEntry]:
    a = t.access_log
    return [_entry(r) for r in connection.execute(select(a).where(a.c.inss == inss).order_by(a.c.sequence))]


def log_entries_of(connection: Connection, institution_ids: Iterable[str], operation: str) -> list[LogEntry]:
    a = t.access_log
    return [_entry(r) for r in connection.execute(
        select(a).where(a.c.institution_id.in_(sorted(set(institution_ids))), a.c.operation == operation)
        .order_by(a.c.sequence))]


def notifications_about(connection: Connection, inss: str):
    n = t.notification
    return connection.execute(select(n).where(n.c.inss == inss).order_by(n.c.institution_id, n.c.sequence)).all()
