"""Write side: the archive, the message keys and the shared facts.

Every function runs inside the caller's transaction; the service commits the
archive row, the key, the facts and the signed result together, so a crash
leaves either all of them or none.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from declarations.domain.model import Dimona, DimonaIn, DmfA, ReferenceData, SocialRisk
from declarations.domain.rules.dimona import apply_change
from declarations.domain.ports import StoredPeriod
from declarations.store import tables as t
from declarations.store.database import DriverStatement, comma_joined, employer_lock_key, is_sqlite
from declarations.store.views import SenderView, StoredView, sender_view


# --- archive ---------------------------------------------------------------

_INSERT_DECLARATION = insert(t.declaration)
# SET status, result: the parameters' keys.
_FINISH_DECLARATION = update(t.declaration).where(t.declaration.c.id == bindparam("declaration_id"))


def new_declaration(connection: Connection, *, received_at: dt.datetime, channel: str, original: bytes,
                    kind: str | None = None, sender_id: str | None = None, message_id: str | None = None,
                    environment: str | None = None, content_sha256: str | None = None,
                    batch_id: str | None = None, original_coding: str | None = None) -> int:
    """Archive a received message; its row id is its DeclarationId. ``original`` as store/originals.py packed it
    (``original_coding``), else as received."""
    return connection.execute(_INSERT_DECLARATION, dict(
        received_at=received_at, channel=channel, kind=kind, sender_id=sender_id, message_id=message_id,
        environment=environment, content_sha256=content_sha256, original=original, original_coding=original_coding,
        batch_id=batch_id, status="RECEIVED", result=b"")).inserted_primary_key[0]


# PostgreSQL: the first statement of a keyed declaration (ingest's step 1), one round trip for:
# - the archive row, unless the (SenderId, MessageId) key is already taken (a retry stores nothing; a C006
#   refusal is archived afterwards without a key);
# - the key, reserved with ON CONFLICT DO NOTHING (which waits for a concurrent transaction holding the same
#   key, then finds it taken, or free if that one rolled back), if the signing certificate is registered
#   for the sender (S003) and ``reserve`` (the caller found it valid now, S004);
# - the rows SenderView answers from (the sender's certificates, the key's first declaration, the employer,
#   the sender, the mandates): views._submission_reads, spelled out;
# - whether any institution is subscribed to ``data_type`` (for the notification hook, issue 5);
# - the employer's advisory lock when ``lock_key`` is given: the rules' reads come in later statements,
#   whose snapshots see whatever the previous holder committed.
_RECEIVE_PG = """
WITH archived AS (
    INSERT INTO declaration (received_at, channel, kind, sender_id, message_id, environment, status,
                             content_sha256, original, original_coding, result, batch_id)
    SELECT CAST(:received_at AS timestamptz), CAST(:channel AS varchar), CAST(:kind AS varchar),
           CAST(:sender_id AS varchar), CAST(:message_id AS varchar), CAST(:environment AS varchar), 'RECEIVED',
           CAST(:content_sha256 AS varchar), CAST(:original AS bytea), CAST(:original_coding AS varchar), ''::bytea,
           CAST(:batch_id AS varchar)
    WHERE NOT EXISTS (SELECT 1 FROM message_key WHERE sender_id = :sender_id AND message_id = :message_id)
    RETURNING id),
reserved AS (
    INSERT INTO message_key (sender_id, message_id, declaration_id, content_sha256)
    SELECT :sender_id, :message_id, archived.id, :content_sha256 FROM archived
    WHERE CAST(:reserve AS boolean) AND EXISTS (SELECT 1 FROM sender_certificate
                               WHERE sender_id = :sender_id AND fingerprint = :fingerprint)
    ON CONFLICT DO NOTHING
    RETURNING declaration_id)
SELECT 'archived' AS what, NULL::varchar AS text_a, NULL::varchar AS text_b, NULL::date AS day_a,
       NULL::date AS day_b, archived.id AS number, NULL::bytea AS blob FROM archived
UNION ALL SELECT 'reserved', NULL, NULL, NULL, NULL, reserved.declaration_id, NULL FROM reserved
UNION ALL SELECT 'fingerprint', fingerprint, NULL, NULL, NULL, NULL, NULL
    FROM sender_certificate WHERE sender_id = :sender_id
UNION ALL SELECT 'key', k.content_sha256, d.status, NULL, NULL, k.declaration_id, d.result
    FROM message_key k JOIN declaration d ON d.id = k.declaration_id
    WHERE k.sender_id = :sender_id AND k.message_id = :message_id
UNION ALL SELECT 'employer', enterprise_nbr, NULL, NULL, NULL, in_directory::integer, NULL
    FROM employer WHERE noss = :noss
UNION ALL SELECT 'sender', noss, NULL, NULL, NULL, NULL, NULL FROM sender WHERE sender_id = :sender_id
UNION ALL SELECT 'mandate', kinds, NULL, valid_from, valid_to, NULL, NULL
    FROM mandate WHERE sender_id = :sender_id AND noss = :noss
UNION ALL SELECT 'subscribed', NULL, NULL, NULL, NULL, NULL, NULL
    WHERE EXISTS (SELECT 1 FROM subscription WHERE data_type = :data_type){lock}
"""
# On the driver's cursor (database.DriverStatement): rows are tuples (what, text_a, text_b, day_a, day_b, number,
# blob), as SenderView reads them.
_RECEIVE = {False: DriverStatement(text(_RECEIVE_PG.format(lock=""))),
            True: DriverStatement(text(_RECEIVE_PG.format(lock="""
UNION ALL SELECT 'locked', NULL, NULL, NULL, NULL, NULL, NULL
    FROM (SELECT pg_advisory_xact_lock(:lock_key)) AS employer_lock""")))}


@dataclass(frozen=True)
class Received:
    """What the first step of a keyed declaration found and wrote."""
    directory: SenderView
    declaration_id: int | None   # its archive row, if written
    reserved: bool               # the key is now this declaration's
    locked: bool                 # the employer's lock is held
    subscribed: bool | None = None  # anyone subscribed to the data type asked for; None: not read


def receive(connection: Connection, *, received_at: dt.datetime, channel: str, original: bytes, kind: str | None,
            sender_id: str, message_id: str, environment: str | None, content_sha256: str, fingerprint: str,
            reserve: bool, noss: str | None, batch_id: str | None = None,
            data_type: str | None = None, original_coding: str | None = None) -> Received:
    """Read what stages 2 to 4 need (``sender_view``) and, if the message key is free, archive the message;
    reserve the key if the certificate is registered and ``reserve``. On PostgreSQL in one statement, which
    also takes the lock of employer ``noss`` when given and reads whether anyone is subscribed to
    ``data_type`` when given; on SQLite (whose BEGIN IMMEDIATE already serialises writers) as separate
    statements, archiving only with the key, and leaving the subscriptions to the notification hook.

    ``reserved`` False with ``directory.first`` None and a trusted certificate means: another transaction
    took the key meanwhile, the caller must roll back. ``original``, ``original_coding``: as new_declaration.
    """
    values = dict(received_at=received_at, channel=channel, kind=kind, sender_id=sender_id, message_id=message_id,
                  environment=environment, content_sha256=content_sha256, original=original,
                  original_coding=original_coding, batch_id=batch_id)
    if is_sqlite(connection):
        directory = sender_view(connection, sender_id, message_id, noss)
        if (not reserve or fingerprint not in directory.sender_fingerprints(sender_id)
                or directory.first is not None):
            return Received(directory, None, False, False)
        declaration_id = new_declaration(connection, **values)
        reserved = reserve_key(connection, sender_id, message_id, declaration_id, content_sha256)
        return Received(directory, declaration_id, reserved, False)
    params = dict(values, reserve=reserve, fingerprint=fingerprint, noss=noss, data_type=data_type)
    if noss is not None:
        params["lock_key"] = employer_lock_key(noss)
    rows = _RECEIVE[noss is not None].rows(connection, params)
    archived = next((row[5] for row in rows if row[0] == "archived"), None)
    reserved = any(row[0] == "reserved" for row in rows)
    subscribed = any(row[0] == "subscribed" for row in rows) if data_type is not None else None
    return Received(SenderView(connection, sender_id, message_id, noss, rows), archived, reserved,
                    noss is not None, subscribed)


def finish_declaration(connection: Connection, declaration_id: int, *, status: str, result: bytes) -> None:
    connection.execute(_FINISH_DECLARATION, {"declaration_id": declaration_id, "status": status, "result": result})


def reserve_key(connection: Connection, sender_id: str, message_id: str, declaration_id: int, sha256: str) -> bool:
    """Take ``(SenderId, MessageId)`` for ever; False if another transaction took it first."""
    # RETURNING rather than rowcount: psycopg reports -1 for ON CONFLICT DO NOTHING.
    taken = connection.execute(_RESERVE_KEY[is_sqlite(connection)], dict(
        sender_id=sender_id, message_id=message_id, declaration_id=declaration_id, content_sha256=sha256)).first()
    return taken is not None


_RESERVE_KEY = {sqlite: dialect_insert(t.message_key).on_conflict_do_nothing().returning(t.message_key.c.declaration_id)
                for sqlite, dialect_insert in ((True, sqlite_insert), (False, pg_insert))}


# --- facts -----------------------------------------------------------------

_ENSURE_PERSONS = {sqlite: dialect_insert(t.person).on_conflict_do_nothing()
                   for sqlite, dialect_insert in ((True, sqlite_insert), (False, pg_insert))}


def ensure_persons(connection: Connection, inss_list) -> None:
    rows = [{"inss": inss} for inss in sorted(set(inss_list))]
    if rows:
        connection.execute(_ENSURE_PERSONS[is_sqlite(connection)], rows)


# PostgreSQL: an accepted Dimona's whole write in one round trip (the person, the period, its version, the signed
# result). The foreign keys between them are checked at the end of the statement, when all rows are there.
# Both on the driver's cursor (database.DriverStatement).
_DIMONA_IN_PG = DriverStatement(text("""
WITH new_person AS (
    INSERT INTO person (inss) VALUES (:inss) ON CONFLICT DO NOTHING),
new_period AS (
    INSERT INTO employment_period (period_id, scope, employer_noss, inss, worker_type, starting_date, ending_date,
                                   joint_commission, planned_hours, cancelled, version)
    VALUES (:period_id, :scope, :employer_noss, :inss, :worker_type, :starting_date, :ending_date,
            :joint_commission, :planned_hours, false, 1)),
new_version AS (
    INSERT INTO employment_period_version (period_id, version, declaration_id, action, starting_date, ending_date,
                                           joint_commission, planned_hours, cancelled)
    VALUES (:period_id, 1, :declaration_id, 'IN', :starting_date, :ending_date, :joint_commission,
            :planned_hours, false))
UPDATE declaration SET status = :status, result = :result WHERE id = :declaration_id
"""))
_DIMONA_CHANGE_PG = DriverStatement(text("""
WITH changed AS (
    UPDATE employment_period SET starting_date = :starting_date, ending_date = :ending_date,
        joint_commission = :joint_commission, planned_hours = :planned_hours, cancelled = :cancelled,
        version = :version
    WHERE period_id = :period_id),
new_version AS (
    INSERT INTO employment_period_version (period_id, version, declaration_id, action, starting_date, ending_date,
                                           joint_commission, planned_hours, cancelled)
    VALUES (:period_id, :version, :declaration_id, :action, :starting_date, :ending_date, :joint_commission,
            :planned_hours, :cancelled))
UPDATE declaration SET status = :status, result = :result WHERE id = :declaration_id
"""))
_INSERT_PERIOD = insert(t.employment_period)
_INSERT_VERSION = insert(t.employment_period_version)
# The SET clause is the parameters' keys (the current version's values).
_UPDATE_PERIOD = update(t.employment_period).where(t.employment_period.c.period_id == bindparam("the_period_id"))


def store_dimona(connection: Connection, dimona: Dimona, declaration_id: int, scope: str, *,
                 current: StoredPeriod | None = None, period_id: int | None = None,
                 status: str | None = None, result: bytes | None = None) -> int:
    """Apply an accepted Dimona; returns the PeriodId it concerns.

    ``current``: for an Out, Update or Cancel, the period as the rules read it (else it is read again).
    ``period_id``: for an In, the PeriodId drawn in advance (``DimonaView.next_period_id``; else the
    database gives one). ``status`` and ``result``: the signed result, written with the facts (one round
    trip on PostgreSQL when ``period_id`` is given for an In).
    """
    action = dimona.action
    finish = result is not None
    if isinstance(action, DimonaIn):
        values = dict(scope=scope, employer_noss=dimona.employer.noss, inss=action.inss,
                      worker_type=action.worker_type, starting_date=action.starting_date,
                      ending_date=action.ending_date, joint_commission=action.joint_commission,
                      planned_hours=action.planned_hours)
        if period_id is not None and finish and not is_sqlite(connection):
            _DIMONA_IN_PG.execute(connection, dict(values, period_id=period_id, declaration_id=declaration_id,
                                                   status=status, result=result))
            return period_id
        ensure_persons(connection, [action.inss])
        row = dict(values, cancelled=False, version=1)
        if period_id is not None:
            row["period_id"] = period_id
        period_id = connection.execute(_INSERT_PERIOD, row).inserted_primary_key[0]
        connection.execute(_INSERT_VERSION, dict(
            period_id=period_id, version=1, declaration_id=declaration_id, action="IN",
            starting_date=action.starting_date, ending_date=action.ending_date,
            joint_commission=action.joint_commission, planned_hours=action.planned_hours, cancelled=False))
    else:
        if current is None:
            current = StoredView(connection, scope).period(action.period_id)
        assert current is not None, "the rules checked the period exists"
        changed, label = apply_change(current, action), action.action.upper()  # OUT, UPDATE, CANCEL
        period_id = current.period_id
        values = dict(starting_date=changed.starting_date, ending_date=changed.ending_date,
                      joint_commission=changed.joint_commission, planned_hours=changed.planned_hours,
                      cancelled=changed.cancelled, version=current.version + 1)
        if finish and not is_sqlite(connection):
            _DIMONA_CHANGE_PG.execute(connection, dict(values, period_id=period_id, declaration_id=declaration_id,
                                                       action=label, status=status, result=result))
            return period_id
        connection.execute(_UPDATE_PERIOD, dict(values, the_period_id=period_id))
        connection.execute(_INSERT_VERSION, dict(values, period_id=period_id, declaration_id=declaration_id,
                                                 action=label))
    if finish:
        finish_declaration(connection, declaration_id, status=status, result=result)
    return period_id


def store_dmfa(connection: Connection, dmfa: DmfA, declaration_id: int, scope: str, *,
               rows: DmfaRows | DmfaValues | None = None, in_person: AbstractSet[str] = frozenset()) -> None:
    """Insert an accepted DmfA with all its children: one bulk write per table.

    A DmfA of 1,000 workers is some 3,000 child rows (a person, a worker record and an occupation each; the
    services, remunerations and contributions in their parent's row since migration 0008). On PostgreSQL the
    workers (in ``person``), the replaced DmfA and the new ``dmfa`` row are one statement, then each child
    table is one COPY whose rows are written as COPY text in one piece (one round trip per table, parsed by
    the server in bulk: per-row executemany was the largest single cost of a batch; ``write_row`` per row
    then cost a third of store_dmfa's own CPU). On SQLite each child table is a few multi-row INSERTs (half the time of
    executemany's one-row statements). Same transaction as the rest of the declaration either way.
    ``rows``: the child rows built in advance (``rows_for``: COPY text on PostgreSQL, values on SQLite; else
    built here). ``in_person``: workers known to be in ``person`` already (``StoredView.in_person``, which says
    why), not inserted again: on PostgreSQL ~1 ms of the server's per 1,000 such workers (a conflict checked
    per worker).
    """
    workers = {p.inss for p in dmfa.persons} - in_person
    if is_sqlite(connection):
        _ensure_dmfa_persons(connection, list(workers))
        d = t.dmfa
        if dmfa.declaration_type == "REPLACEMENT":
            # Only within its own scope: a sender's TEST replacement of a PROD DmfA shadows it for that
            # sender's tests (StoredView.current_dmfa: newest first) and leaves PROD untouched.
            connection.execute(update(d).where(d.c.declaration_id == dmfa.replaces, d.c.scope == scope).values(
                is_current=False, replaced_by_declaration_id=declaration_id))
        connection.execute(insert(d).values(
            declaration_id=declaration_id, scope=scope, employer_noss=dmfa.employer.noss,
            quarter=dmfa.quarter.code, declaration_type=dmfa.declaration_type,
            replaces_declaration_id=dmfa.replaces, is_current=True, net_owed_amount=dmfa.net_owed_amount))
        values = rows.tables if isinstance(rows, DmfaValues) else _sqlite_values(dmfa)
        for table, table_values in zip(_DMFA_TABLES, values):
            _insert_rows_sqlite(connection, f"INSERT INTO {table.name}", _DMFA_COLUMNS[table.name], table_values,
                                declaration_id=declaration_id)
        return
    inss = sorted(workers)
    joined = comma_joined(inss)
    _DMFA_HEAD_PG[joined is not None, dmfa.declaration_type == "REPLACEMENT"].execute(connection, dict(
        inss=inss if joined is None else joined, declaration_id=declaration_id, scope=scope,
        employer_noss=dmfa.employer.noss, quarter=dmfa.quarter.code, declaration_type=dmfa.declaration_type,
        replaces=dmfa.replaces, net_owed_amount=dmfa.net_owed_amount))
    _copy_pg(connection, dmfa, declaration_id, rows if isinstance(rows, DmfaRows) else None)


# PostgreSQL: the DmfA's workers in ``person`` (most are there already), the DmfA it replaces (only within its
# own scope: a sender's TEST replacement of a PROD DmfA shadows it for that sender's tests, StoredView.current_dmfa
# takes the newest, and leaves PROD untouched) and its ``dmfa`` row, in one round trip. On the driver's cursor
# (database.DriverStatement). Keyed by (workers as one text, a REPLACEMENT).
_DMFA_HEAD_SQL = """
WITH new_persons AS (
    INSERT INTO person (inss) SELECT unnest({workers}) ON CONFLICT DO NOTHING){replaced}
INSERT INTO dmfa (declaration_id, scope, employer_noss, quarter, declaration_type, replaces_declaration_id,
                  is_current, net_owed_amount)
VALUES (:declaration_id, :scope, :employer_noss, :quarter, :declaration_type, :replaces, true, :net_owed_amount)
"""
_REPLACED_SQL = """,
replaced AS (
    UPDATE dmfa SET is_current = false, replaced_by_declaration_id = :declaration_id
    WHERE declaration_id = :replaces AND scope = :scope)"""
_DMFA_HEAD_PG = {
    (as_text, replacement): DriverStatement(text(_DMFA_HEAD_SQL.format(
        workers="string_to_array(CAST(:inss AS text), ',')" if as_text else "CAST(:inss AS varchar[])",
        replaced=_REPLACED_SQL if replacement else "")))
    for as_text in (True, False) for replacement in (True, False)}

_DMFA_COLUMNS = {
    "dmfa_person": ("declaration_id", "person_nbr", "inss"),
    "dmfa_worker_record": ("declaration_id", "person_nbr", "record_nbr", "worker_code", "contribution_codes",
                           "contribution_bases", "contribution_amounts"),
    "dmfa_occupation": ("declaration_id", "person_nbr", "record_nbr", "occupation_nbr", "starting_date",
                        "ending_date", "joint_commission", "working_days_system", "mean_working_hours",
                        "ref_mean_working_hours", "service_codes", "service_days", "service_hours",
                        "remuneration_codes", "remuneration_amounts"),
}
# Parents before children.
_DMFA_TABLES = (t.dmfa_person, t.dmfa_worker_record, t.dmfa_occupation)
for _table in _DMFA_TABLES:  # the names are ours, but never let a typo reach SQL text silently
    for _name in _DMFA_COLUMNS[_table.name]:
        _table.c[_name]


def _dmfa_values(dmfa: DmfA, *, iso_dates: bool, arrays=list) -> list[list]:
    """Each child table's rows (in _DMFA_TABLES order) as one flat list of values, row after row, in
    _DMFA_COLUMNS order but without the declaration id (put in by the statement, or in front of each row);
    dates as ISO text when ``iso_dates`` (as SQLAlchemy's Date type stores them on SQLite, not via sqlite3's
    deprecated default adapter); each repeating group's values as ``arrays`` makes them of a list (as they are:
    psycopg writes a list as an array; ``_json_array``: SQLite's JSON text)."""
    persons, records, occupations = [], [], []
    for person in dmfa.persons:
        p_nbr = person.sequence
        persons += (p_nbr, person.inss)
        for record_nbr, record in enumerate(person.worker_records, 1):
            cs = record.contributions
            records += (p_nbr, record_nbr, record.worker_code, arrays([c.code for c in cs]),
                        arrays([c.base for c in cs]), arrays([c.amount for c in cs]))
            for o in record.occupations:
                starting, ending = o.starting_date, o.ending_date
                if iso_dates:
                    starting = starting.isoformat()
                    ending = None if ending is None else ending.isoformat()
                ss, rs = o.services, o.remuns
                occupations += (p_nbr, record_nbr, o.sequence, starting, ending, o.joint_commission,
                                o.working_days_system, o.mean_working_hours, o.ref_mean_working_hours,
                                arrays([s.code for s in ss]), arrays([s.days for s in ss]),
                                arrays([s.hours for s in ss]), arrays([r.code for r in rs]),
                                arrays([r.amount for r in rs]))
    return [persons, records, occupations]


# A str as JSON text, quoted and escaped (what json.dumps writes for it, without its per-call set-up: a DmfA of
# 1,000 workers has ~8,000 arrays, and json.dumps of each cost ~11 ms against ~2.5).
_json_string = json.encoder.encode_basestring_ascii


def _json_array(values: list) -> str:
    """A repeating group's values as the JSON array SQLite keeps (``json.loads`` gives ``values`` back): the
    decoder's str, int and None written here, anything else by json.dumps."""
    return "[" + ",".join([_json_string(v) if v.__class__ is str else str(v) if v.__class__ is int
                           else "null" if v is None else json.dumps(v) for v in values]) + "]"


def _sqlite_values(dmfa: DmfA) -> list[list]:
    return _dmfa_values(dmfa, iso_dates=True, arrays=_json_array)


# Rows per multi-row INSERT on SQLite at most: one statement per table for a DmfA of a few thousand workers
# (as many statements as executemany took), fewer where the connection's limits (bound parameters: 32,766
# since SQLite 3.32, 999 before; statement length) say so.
_SQLITE_ROWS_PER_INSERT = 5000


def _insert_rows_sqlite(connection: Connection, head: str, columns: tuple[str, ...], values: list, *,
                        declaration_id: int | None = None) -> None:
    """``values`` (rows of ``columns``, one flat list) in multi-row INSERTs: ``head`` (COLUMNS) VALUES (...), ...
    With ``declaration_id``, the first column's value is that, bound once per statement (``?1`` in every row)
    and not in ``values``: the rows can be built before the id is drawn, and the statement's text does not
    change with the id (sqlite3 keeps it compiled)."""
    if not values:
        return
    driver = connection.connection.driver_connection
    fixed = 0 if declaration_id is None else 1
    width = len(columns) - fixed
    row = "(" + ",".join(["?1"] * fixed + ["?"] * width) + ")"
    head = f"{head} ({', '.join(columns)}) VALUES "
    per = min(_SQLITE_ROWS_PER_INSERT, (driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - fixed) // width,
              (driver.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH) - len(head)) // (len(row) + 1))
    step = max(1, per) * width
    for start in range(0, len(values), step):
        chunk = tuple(values[start:start + step])
        if fixed:
            chunk = (declaration_id, *chunk)
        connection.exec_driver_sql(head + ",".join([row] * ((len(chunk) - fixed) // width)), chunk)


@dataclass(frozen=True)
class DmfaValues:
    """A DmfA's child rows as SQLite takes them (``_dmfa_values``: ISO dates, no declaration id), built
    before the declaration's transaction as DmfaRows are for PostgreSQL."""
    tables: list[list]


def rows_for(connection_or_engine, dmfa: DmfA) -> DmfaRows | DmfaValues:
    """``dmfa``'s child rows, ready for ``store_dmfa`` on this store (the same rows it would build itself):
    COPY text on PostgreSQL, values on SQLite."""
    if is_sqlite(connection_or_engine):
        return DmfaValues(_sqlite_values(dmfa))
    return dmfa_rows(dmfa)


@dataclass(frozen=True)
class DmfaRows:
    """A DmfA's child rows as PostgreSQL COPY text, each row without its declaration id (``dmfa_rows``).

    Built before the declaration's transaction (``Ingest.submit``), when its id is not drawn yet; in it,
    ``store_dmfa`` only puts the id in front of each row (one ``str.join`` per table). In a batch, whose
    transactions run one after the other, that keeps ~5 ms of Python per 1,000 workers out of the chain.
    """
    tables: tuple[list[str], ...]   # in _DMFA_TABLES order; each row's values after the id, tab-separated
    nulls: tuple[int, ...]          # the \N written, per table
    quoted: tuple[int, ...]         # the array elements written in double quotes (the codes), per table


def _codes(items: tuple) -> str:
    """The codes of a repeating group as an array's COPY text, each in double quotes: whatever a code holds, it
    stays one element (``_copy_pg`` counts the quotes)."""
    return '{"' + '","'.join([item.code for item in items]) + '"}' if items else "{}"


# Each repeating group's arrays as COPY text, tab-separated. A group of one element (the most frequent) is
# written in one f-string: 3.4 -> 2.4 ms for a DmfA of 1,000 workers.

def _service_arrays(services: tuple) -> str:
    if len(services) == 1:
        s = services[0]
        return f'{{"{s.code}"}}\t{{{s.days}}}\t{{{"NULL" if s.hours is None else s.hours}}}'
    return (f"{_codes(services)}\t{{{','.join([str(s.days) for s in services])}}}\t"
            f"{{{','.join(['NULL' if s.hours is None else str(s.hours) for s in services])}}}")


def _remuneration_arrays(remuns: tuple) -> str:
    if len(remuns) == 1:
        r = remuns[0]
        return f'{{"{r.code}"}}\t{{{r.amount}}}'
    return f"{_codes(remuns)}\t{{{','.join([str(r.amount) for r in remuns])}}}"


def _contribution_arrays(contributions: tuple) -> str:
    if len(contributions) == 1:
        c = contributions[0]
        return f'{{"{c.code}"}}\t{{{c.base}}}\t{{{c.amount}}}'
    return (f"{_codes(contributions)}\t{{{','.join([str(c.base) for c in contributions])}}}\t"
            f"{{{','.join([str(c.amount) for c in contributions])}}}")


def dmfa_rows(dmfa: DmfA) -> DmfaRows:
    """``dmfa``'s child rows, ready for ``store_dmfa`` on PostgreSQL (the same rows it would build itself).

    Each row's key columns are written once per person and worker record and its rows start with them, and
    each date is written once (a DmfA's occupations share a few)."""
    persons, records, occupations = [], [], []
    nulls, quoted = [0, 0, 0], [0, 0, 0]
    days: dict = {}  # date -> ISO text
    for person in dmfa.persons:
        p_key = f"{person.sequence}\t"
        persons.append(p_key + person.inss)
        for record_nbr, record in enumerate(person.worker_records, 1):
            r_key = f"{p_key}{record_nbr}\t"
            quoted[1] += len(record.contributions)
            records.append(f"{r_key}{record.worker_code}\t{_contribution_arrays(record.contributions)}")
            for o in record.occupations:
                starting = days.get(o.starting_date) or days.setdefault(o.starting_date, o.starting_date.isoformat())
                if o.ending_date is None:
                    ending = "\\N"
                    nulls[2] += 1
                else:
                    ending = days.get(o.ending_date) or days.setdefault(o.ending_date, o.ending_date.isoformat())
                quoted[2] += len(o.services) + len(o.remuns)
                occupations.append(
                    f"{r_key}{o.sequence}\t{starting}\t{ending}\t{o.joint_commission}\t{o.working_days_system}\t"
                    f"{o.mean_working_hours}\t{o.ref_mean_working_hours}\t{_service_arrays(o.services)}\t"
                    f"{_remuneration_arrays(o.remuns)}")
    return DmfaRows((persons, records, occupations), tuple(nulls), tuple(quoted))


def _copy_pg(connection: Connection, dmfa: DmfA, declaration_id: int, rows: DmfaRows | None) -> None:
    """The child rows with COPY, each table's rows as COPY text written in one piece.

    Values are the decoder's: numbers, dates, and codes the XSD restricts to digits and letters. Should a
    text value carry a character that COPY text must escape (backslash, tab, line feed, carriage return), or
    a code a double quote (which would end its array element early), the counts of separators below tell,
    and that table's rows go through psycopg's ``write_row``, which escapes (and writes a list as an array):
    the same rows are stored either way.
    """
    if rows is None:
        rows = dmfa_rows(dmfa)
    prefix = f"{declaration_id}\t"
    fallback = None
    # The DBAPI connection under this SQLAlchemy connection: same session, same transaction.
    with connection.connection.driver_connection.cursor() as cursor:
        for n, (table, lines) in enumerate(zip(_DMFA_TABLES, rows.tables)):
            if not lines:
                continue
            columns = _DMFA_COLUMNS[table.name]
            data = prefix + ("\n" + prefix).join(lines) + "\n"
            # Exactly one tab between the values and one line feed after each row, no backslash but those of
            # the NULLs written (a value holding "\\N" would otherwise read as NULL), no double quote but those
            # around the codes; no CR; no NUL (which write_row refuses with its own error).
            plain = (data.count("\t") == len(lines) * (len(columns) - 1) and data.count("\n") == len(lines)
                     and data.count("\\") == rows.nulls[n] and data.count('"') == 2 * rows.quoted[n]
                     and "\r" not in data and "\x00" not in data)
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                if plain:
                    copy.write(data)
                else:
                    if fallback is None:
                        fallback = _dmfa_values(dmfa, iso_dates=False)
                    values, width = fallback[n], len(columns) - 1
                    for start in range(0, len(values), width):
                        copy.write_row((declaration_id, *values[start:start + width]))


def _ensure_dmfa_persons(connection: Connection, inss_list: list[str]) -> None:
    """SQLite: the DmfA's workers in ``person`` (most are there already), in INSERT OR IGNOREs of many rows.
    (PostgreSQL: in store_dmfa's first statement.)"""
    _insert_rows_sqlite(connection, "INSERT OR IGNORE INTO person", ("inss",), sorted(set(inss_list)))


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
