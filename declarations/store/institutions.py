"""The institutions' tables (institutions.md): register, subscriptions,
notifications, MessageIds, the access log, and the reads behind Consult.

Every function runs in the caller's transaction. Reads are few and indexed:
a Consult costs one statement per data table it touches (the benchmark is a
million persons at 300 Consults/s).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from sqlalchemy import and_, delete, insert, or_, select, text, tuple_, update
from sqlalchemy.engine import Connection

from declarations.domain.access import RegisterEntry
from declarations.domain.access_log import LogEntry, content_around_chain, sealed
from declarations.domain.directory import DirectoryAuthorization
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
class Holder:
    """A register entry of a subscribed institution, in a capacity authorized for the data type."""
    institution_id: str
    inss: str
    capacity: str
    valid_from: dt.date
    valid_to: dt.date | None

    def overlaps(self, start: dt.date, end: dt.date | None) -> bool:
        return (end is None or self.valid_from <= end) and (self.valid_to is None or start <= self.valid_to)


def holders(connection: Connection, data_type: str, inss_list: Iterable[str]) -> dict[str, list[Holder]]:
    """Who is to be notified about these persons for this data type, by INSS (one query per 500 INSS)."""
    r, s, a = t.register_entry, t.subscription, t.authorization
    found: dict[str, list[Holder]] = defaultdict(list)
    inss_list = sorted(set(inss_list))
    for start in range(0, len(inss_list), CHUNK):
        rows = connection.execute(
            select(r.c.institution_id, r.c.inss, r.c.capacity, r.c.valid_from, r.c.valid_to)
            .join(s, and_(s.c.institution_id == r.c.institution_id, s.c.data_type == data_type))
            .join(a, and_(a.c.institution_id == r.c.institution_id, a.c.capacity == r.c.capacity,
                          a.c.data_type == data_type))
            .where(r.c.inss.in_(inss_list[start:start + CHUNK])))
        for row in rows:
            found[row.inss].append(Holder(row.institution_id, row.inss, row.capacity, row.valid_from, row.valid_to))
    return found


@dataclass(frozen=True)
class NewNotification:
    institution_id: str
    inss: str
    data_type: str
    declaration_id: int
    change: str
    start: dt.date
    end: dt.date | None
    authorization: str         # CAPACITY:DATA_TYPE of the register entries that made it due


def add_notifications(connection: Connection, notifications: list[NewNotification], now: dt.datetime) -> None:
    """Number and store them: per institution, the next Sequences from its counter row.

    The counter is bumped with one upsert per institution, in institution
    order (two declarations never wait on each other's rows crosswise); its
    row stays locked until the declaration commits or rolls back, so the
    numbers are given out with no gap and become visible in order."""
    by_institution: dict[str, list[NewNotification]] = defaultdict(list)
    for n in notifications:
        by_institution[n.institution_id].append(n)
    q = t.institution_sequence
    rows = []
    for institution_id in sorted(by_institution):
        batch = by_institution[institution_id]
        upsert = _dialect_insert(connection, q).values(institution_id=institution_id, last_sequence=len(batch))
        last = connection.execute(upsert.on_conflict_do_update(
            index_elements=[q.c.institution_id], set_={"last_sequence": q.c.last_sequence + len(batch)})
            .returning(q.c.last_sequence)).scalar_one()
        for sequence, n in enumerate(batch, last - len(batch) + 1):
            rows.append({"institution_id": institution_id, "sequence": sequence, "inss": n.inss,
                         "data_type": n.data_type, "declaration_id": n.declaration_id, "change": n.change,
                         "period_start": n.start, "period_end": n.end, "created_at": now,
                         "authorization": n.authorization})
    if rows:
        connection.execute(insert(t.notification), rows)


def notifications_after(connection: Connection, institution_id: str, after: int, limit: int):
    n = t.notification
    return connection.execute(select(n).where(n.c.institution_id == institution_id, n.c.sequence > after)
                              .order_by(n.c.sequence).limit(limit)).all()


def last_sequence(connection: Connection, institution_id: str) -> int:
    q = t.institution_sequence
    return connection.execute(select(q.c.last_sequence).where(q.c.institution_id == institution_id)).scalar() or 0


def dimona_change(connection: Connection, period_id: int):
    """The period after the change (inss, dates, cancelled) and its dates before it (None for a new one)."""
    p, v = t.employment_period, t.employment_period_version
    return connection.execute(
        select(p.c.inss, p.c.starting_date, p.c.ending_date, p.c.cancelled,
               v.c.starting_date.label("before_start"), v.c.ending_date.label("before_end"))
        .outerjoin(v, and_(v.c.period_id == p.c.period_id, v.c.version == p.c.version - 1))
        .where(p.c.period_id == period_id)).first()


def dmfa_persons(connection: Connection, declaration_id: int) -> list[str]:
    dp = t.dmfa_person
    return list(connection.execute(select(dp.c.inss).where(dp.c.declaration_id == declaration_id)).scalars())


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
    [first_quarter, last_quarter] (YYYYQ), with occupations, services and remunerations: 3 statements.

    Current for PROD readers: not replaced by a PROD replacement (a sender's TEST
    replacement marks the PROD DmfA it shadows as not current for that sender's tests)."""
    d, dp, w, o = t.dmfa, t.dmfa_person, t.dmfa_worker_record, t.dmfa_occupation
    by = d.alias("replacement")
    records = connection.execute(
        select(d.c.declaration_id, d.c.employer_noss, d.c.quarter, dp.c.person_nbr, w.c.record_nbr,
               w.c.worker_code, o.c.occupation_nbr, o.c.starting_date, o.c.ending_date, o.c.joint_commission,
               o.c.working_days_system, o.c.mean_working_hours, o.c.ref_mean_working_hours)
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
    if not quarters:
        return []
    # The person's key in each DmfA: a primary-key prefix of the children, however big the DmfA.
    keys = sorted({(key[0], key[1]) for key in quarters})
    occupations = {(k[0], k[1], k[2], occ["occupation_nbr"]): occ for k, q in quarters.items() for occ in q.occupations}
    for table, field in ((t.dmfa_service, "services"), (t.dmfa_remuneration, "remunerations")):
        columns = [table.c.declaration_id, table.c.person_nbr, table.c.record_nbr, table.c.occupation_nbr,
                   table.c.code] + ([table.c.days, table.c.hours] if field == "services" else [table.c.amount])
        rows = connection.execute(
            select(*columns).where(tuple_(table.c.declaration_id, table.c.person_nbr).in_(keys))
            .order_by(table.c.declaration_id, table.c.person_nbr, table.c.record_nbr, table.c.occupation_nbr,
                      table.c.position))
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
