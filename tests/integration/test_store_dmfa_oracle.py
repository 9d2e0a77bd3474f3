"""store_dmfa (one head statement and COPY text on PostgreSQL, multi-row INSERTs on SQLite, since dmfa-cpu)
stores exactly the rows a plain implementation stores, on both stores: the same DmfA is stored by the oracle
below (the code before dmfa-cpu, verbatim but for its names; since migration 0008 its rows carry the repeating
groups as lists, which psycopg's write_row writes as arrays and json.dumps as SQLite's JSON arrays) and by
store_dmfa, and every dmfa_* row and the persons compare equal, whatever the text values carry (COPY's and the
arrays' own separators, quotes and escapes included)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3

import pytest

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from declarations import samples
from declarations.domain.model import DmfA
from declarations.store import facts
from declarations.store import tables as t
from declarations.store.database import is_sqlite
from declarations.xmlio.decoding import decode

EMPLOYER = "123456749"
NOW = dt.datetime(2025, 11, 15, 10, 0, tzinfo=dt.timezone.utc)


# --- the oracle: store_dmfa before dmfa-cpu ----------------------------------------------------------------

def oracle_store_dmfa(connection: Connection, dmfa: DmfA, declaration_id: int, scope: str) -> None:
    _ensure_dmfa_persons(connection, [p.inss for p in dmfa.persons])
    d = t.dmfa
    if dmfa.declaration_type == "REPLACEMENT":
        connection.execute(update(d).where(d.c.declaration_id == dmfa.replaces, d.c.scope == scope).values(
            is_current=False, replaced_by_declaration_id=declaration_id))
    connection.execute(insert(d).values(
        declaration_id=declaration_id, scope=scope, employer_noss=dmfa.employer.noss, quarter=dmfa.quarter.code,
        declaration_type=dmfa.declaration_type, replaces_declaration_id=dmfa.replaces, is_current=True,
        net_owed_amount=dmfa.net_owed_amount))
    persons, records, occupations = [], [], []
    for person in dmfa.persons:
        p_nbr = person.sequence
        persons.append((declaration_id, p_nbr, person.inss))
        for record_nbr, record in enumerate(person.worker_records, 1):
            cs = record.contributions
            records.append((declaration_id, p_nbr, record_nbr, record.worker_code, [c.code for c in cs],
                            [c.base for c in cs], [c.amount for c in cs]))
            for o in record.occupations:
                ss, rs = o.services, o.remuns
                occupations.append((declaration_id, p_nbr, record_nbr, o.sequence, o.starting_date, o.ending_date,
                                    o.joint_commission, o.working_days_system, o.mean_working_hours,
                                    o.ref_mean_working_hours, [s.code for s in ss], [s.days for s in ss],
                                    [s.hours for s in ss], [r.code for r in rs], [r.amount for r in rs]))
    for table, rows in ((t.dmfa_person, persons), (t.dmfa_worker_record, records),
                        (t.dmfa_occupation, occupations)):
        _bulk_insert(connection, table, rows)


def _bulk_insert(connection: Connection, table, rows: list[tuple]) -> None:
    if not rows:
        return
    columns = facts._DMFA_COLUMNS[table.name]
    names = ", ".join(columns)
    if is_sqlite(connection):
        rows = [tuple(v.isoformat() if isinstance(v, dt.date) else json.dumps(v) if isinstance(v, list) else v
                      for v in row) for row in rows]
        marks = ", ".join("?" * len(columns))
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
        return
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _ensure_dmfa_persons(connection: Connection, inss_list: list[str]) -> None:
    unique = sorted(set(inss_list))
    if not unique:
        return
    if is_sqlite(connection):
        connection.exec_driver_sql("INSERT OR IGNORE INTO person (inss) VALUES (?)", [(i,) for i in unique])
        return
    connection.execute(text("INSERT INTO person (inss) SELECT unnest(CAST(:inss AS varchar[])) "
                            "ON CONFLICT DO NOTHING"), {"inss": unique})


# --- DmfAs ---------------------------------------------------------------------------------------------------

def _dmfa(workers: int, *, declaration_type: str = "ORIGINAL", replaces: int | None = None, prefix: str = "9",
          odd_text: str | None = None, odd_inss: bool = True) -> DmfA:
    people = [f"{prefix}{n:010d}" for n in range(workers)]
    dmfa = decode(samples.dmfa(
        message_id="m", sender_id="1001", noss=EMPLOYER, quarter="20253", declaration_type=declaration_type,
        replaces=replaces, workers=[
            samples.worker(p, sequence=n + 1, worker_code=("495", "015", "840", "050")[n % 4], occupations=[
                samples.occupation(k + 1, start=dt.date(2025, 7, 1) + dt.timedelta(days=n % 40),
                                   end=None if (n + k) % 3 else dt.date(2025, 9, 30), jc="302",
                                   services=[("001", 6000), ("002", 120)][:1 + (n + k) % 2],
                                   remuns=[("001", 300000 + n), ("010", 77)][:1 + n % 2])
                for k in range(1 + n % 3)])
            for n, p in enumerate(people)]))
    persons = list(dmfa.persons)
    # Two WorkerRecords for the first worker (samples writes one), a service without hours.
    first = persons[0]
    record = first.worker_records[0]
    occupation = record.occupations[0]
    service = dataclasses.replace(occupation.services[0], hours=None if occupation.services[0].hours else 3)
    record = dataclasses.replace(record, occupations=(dataclasses.replace(occupation, services=(service,)),)
                                 + record.occupations[1:])
    persons[0] = dataclasses.replace(first, worker_records=(record, record))
    if odd_text is not None:
        # What COPY text must escape or would misread, in every kind of text column.
        second = persons[1]
        rec = second.worker_records[0]
        occ = rec.occupations[0]
        occ = dataclasses.replace(
            occ, joint_commission=odd_text,
            services=tuple(dataclasses.replace(s, code=odd_text) for s in occ.services),
            remuns=tuple(dataclasses.replace(r, code=odd_text) for r in occ.remuns))
        rec = dataclasses.replace(rec, worker_code=odd_text, occupations=(occ,) + rec.occupations[1:],
                                  contributions=tuple(dataclasses.replace(c, code=odd_text)
                                                      for c in rec.contributions))
        inss = (odd_text + "12345678901")[:11] if odd_inss else second.inss
        persons[1] = dataclasses.replace(second, inss=inss, worker_records=(rec,))
    return dataclasses.replace(dmfa, persons=tuple(persons))


_CHILDREN = (t.dmfa_person, t.dmfa_worker_record, t.dmfa_occupation)


def _stored(connection: Connection, declaration_id: int, replaced: int) -> dict:
    """Every row the DmfA wrote, its own id taken out and the id of the DmfA it replaces named (each
    implementation stores under ids of its own)."""
    out = {}
    for table in (t.dmfa,) + _CHILDREN:
        rows = connection.execute(select(table).where(table.c.declaration_id == declaration_id)).all()
        out[table.name] = sorted(
            tuple("the replaced DmfA" if k == "replaces_declaration_id" and v == replaced else v
                  for k, v in row._mapping.items() if k != "declaration_id") for row in rows)
    return out


def _declaration(connection: Connection) -> int:
    return facts.new_declaration(connection, received_at=NOW, channel="CLI", original=b"x")


def _compare(app, dmfa_for) -> None:
    """``dmfa_for(replaces)``: the DmfA to store, given the id of the DmfA it replaces."""
    with app.engine.begin() as connection:
        _compare_on(connection, dmfa_for)


def _store_with_rows_built_before(connection: Connection, dmfa: DmfA, declaration_id: int, scope: str) -> None:
    """As Ingest.submit does: the rows built before the transaction drew the id (COPY text on PostgreSQL,
    values on SQLite)."""
    facts.store_dmfa(connection, dmfa, declaration_id, scope, rows=facts.rows_for(connection, dmfa))


def _compare_on(connection: Connection, dmfa_for) -> None:
    ids = {}
    # The new ones first: they add the workers to ``person`` (the oracle then finds them there).
    for name, store in (("new", facts.store_dmfa), ("rows built before", _store_with_rows_built_before),
                        ("oracle", oracle_store_dmfa)):
        before = _declaration(connection)  # a DmfA for the REPLACEMENT to replace
        oracle_store_dmfa(connection, _dmfa(3, prefix="8"), before, "PROD")
        ids[name] = _declaration(connection), before
        store(connection, dmfa_for(before), ids[name][0], "PROD")
    oracle_id, oracle_before = ids.pop("oracle")
    expected = _stored(connection, oracle_id, oracle_before)
    assert expected["dmfa_person"]
    oracle_old = connection.execute(select(t.dmfa.c.is_current, t.dmfa.c.replaced_by_declaration_id)
                                    .where(t.dmfa.c.declaration_id == oracle_before)).one()
    for name, (new_id, new_before) in ids.items():
        assert _stored(connection, new_id, new_before) == expected, name
        old = connection.execute(select(t.dmfa.c.is_current, t.dmfa.c.replaced_by_declaration_id)
                                 .where(t.dmfa.c.declaration_id == new_before)).one()
        assert (old.is_current, old.replaced_by_declaration_id == new_id) \
            == (oracle_old.is_current, oracle_old.replaced_by_declaration_id == oracle_id), name
    # The workers are persons either way (most there already, the others added).
    persons = set(connection.execute(select(t.person.c.inss)).scalars())
    assert {p.inss for p in dmfa_for(None).persons} <= persons
    connection.rollback()  # nothing stays


def test_same_rows_as_before(app):
    _compare(app, lambda before: _dmfa(40))


def test_same_rows_as_before_for_a_replacement(app):
    _compare(app, lambda before: _dmfa(25, declaration_type="REPLACEMENT", replaces=before, prefix="7"))


def test_same_rows_as_before_for_1000_workers(app):
    _compare(app, lambda before: _dmfa(1000))


def test_same_rows_as_before_with_what_copy_text_escapes(app):
    # (Codes are VARCHAR(3) on PostgreSQL: short values.)
    for odd in ("a\tb", "x\\N", "\\N", "l\nf", "c\rr", "b\\s", ",", "é€", "\t", '"', 'a"b', "{}", "a,b", " x ",
                "NUL", "", "\\"):
        _compare(app, lambda before, odd=odd: _dmfa(6, odd_text=odd))


def test_an_empty_inss_is_a_person_as_before(app):
    def dmfa_for(before):
        dmfa = _dmfa(4)
        return dataclasses.replace(dmfa, persons=(dataclasses.replace(dmfa.persons[0], inss=""),)
                                   + dmfa.persons[1:])
    _compare(app, dmfa_for)


@pytest.mark.parametrize("limit, value", [(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 25),  # 2 occupation rows
                                          (sqlite3.SQLITE_LIMIT_SQL_LENGTH, 700)])      # ~20 person rows
def test_sqlite_statements_stay_within_the_connection_limits(app, limit, value):
    """An SQLite built with lower limits (999 bound parameters before 3.32): smaller multi-row INSERTs."""
    if not is_sqlite(app.engine):
        pytest.skip("SQLite only")
    with app.engine.begin() as connection:
        driver = connection.connection.driver_connection
        before = driver.getlimit(limit)
        driver.setlimit(limit, value)
        try:
            _compare_on(connection, lambda before: _dmfa(60))
        finally:
            driver.setlimit(limit, before)


@pytest.mark.parametrize("odd_inss", [False, True])
def test_a_nul_fails_or_is_stored_as_before(app, odd_inss):
    """PostgreSQL refuses a NUL in text (psycopg before sending, for the INSS; for the codes, write_row as
    before): the same error either way; SQLite stores it, the same rows either way."""
    outcomes = []
    for store in (facts.store_dmfa, _store_with_rows_built_before, oracle_store_dmfa):
        with app.engine.connect() as connection:
            transaction = connection.begin()
            try:
                declaration_id = _declaration(connection)
                store(connection, _dmfa(4, odd_text="a\x00", odd_inss=odd_inss), declaration_id, "PROD")
                outcomes.append(_stored(connection, declaration_id, None))
            except Exception as exc:  # noqa: BLE001 - the oracle's own error is the expectation
                outcomes.append(type(exc))
            finally:
                transaction.rollback()
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert isinstance(outcomes[0], dict) == is_sqlite(app.engine)
