"""dmfa_person's worker is in person and its DmfA in dmfa, whatever writes the row: foreign keys on SQLite, a
check per statement on PostgreSQL (migration 0005). A breach is an IntegrityError on both, and nothing of the
statement stays."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from declarations.store import facts
from declarations.store import tables as t

NOW = dt.datetime.fromisoformat("2025-11-15T10:00:00+01:00")


def _dmfa(connection, workers: list[str]) -> int:
    """A stored DmfA (its dmfa row) whose workers are in person; its declaration id."""
    declaration_id = facts.new_declaration(connection, received_at=NOW, channel="CLI", original=b"x")
    facts.ensure_persons(connection, workers)
    connection.execute(insert(t.dmfa).values(
        declaration_id=declaration_id, scope="PROD", employer_noss="123456749", quarter=20253,
        declaration_type="ORIGINAL", is_current=True, net_owed_amount=0))
    return declaration_id


def _rows(connection) -> int:
    return connection.execute(select(func.count()).select_from(t.dmfa_person)).scalar_one()


def test_rows_that_refer_to_stored_workers_and_dmfa_are_stored(app):
    with app.engine.begin() as connection:
        declaration_id = _dmfa(connection, ["60010100172", "60010200109"])
        connection.execute(insert(t.dmfa_person), [
            dict(declaration_id=declaration_id, person_nbr=1, inss="60010100172"),
            dict(declaration_id=declaration_id, person_nbr=2, inss="60010200109")])
        assert _rows(connection) == 2


@pytest.mark.parametrize("wrong", ["worker", "dmfa"])
def test_a_row_that_refers_to_nothing_is_refused(app, wrong):
    with app.engine.connect() as connection:
        with connection.begin():
            declaration_id = _dmfa(connection, ["60010100172"])
        rows = [dict(declaration_id=declaration_id, person_nbr=1, inss="60010100172"),
                dict(declaration_id=declaration_id + 1000 if wrong == "dmfa" else declaration_id, person_nbr=2,
                     inss="99999999999" if wrong == "worker" else "60010100172")]
        with pytest.raises(IntegrityError) as refused, connection.begin():
            connection.execute(insert(t.dmfa_person), rows)
        expected = ("FOREIGN KEY constraint failed" if app.engine.dialect.name == "sqlite"
                    else "INSS 99999999999, which is not in person" if wrong == "worker"
                    else f"DmfA {declaration_id + 1000}, which is not in dmfa")
        assert expected in str(refused.value)
        assert _rows(connection) == 0  # the whole statement, not only the wrong row


def test_a_copy_is_checked_too(app):
    if app.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    with app.engine.connect() as connection:
        with connection.begin():
            declaration_id = _dmfa(connection, ["60010100172"])
        import psycopg
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="INSS 99999999999, which is not in person"), \
                connection.begin():
            with connection.connection.driver_connection.cursor() as cursor:
                with cursor.copy("COPY dmfa_person (declaration_id, person_nbr, inss) FROM STDIN") as copy:
                    copy.write(f"{declaration_id}\t1\t60010100172\n{declaration_id}\t2\t99999999999\n")
        assert _rows(connection) == 0


@pytest.mark.parametrize("removed", ["person", "dmfa"])
def test_a_worker_or_dmfa_still_referred_to_stays(app, removed):
    with app.engine.connect() as connection:
        with connection.begin():
            declaration_id = _dmfa(connection, ["60010100172"])
            connection.execute(insert(t.dmfa_person).values(declaration_id=declaration_id, person_nbr=1,
                                                            inss="60010100172"))
        statement = (delete(t.person).where(t.person.c.inss == "60010100172") if removed == "person"
                     else delete(t.dmfa).where(t.dmfa.c.declaration_id == declaration_id))
        with pytest.raises(IntegrityError), connection.begin():
            connection.execute(statement)
        assert _rows(connection) == 1


def test_postgresql_checks_per_statement_not_per_row(app):
    """What migration 0005 changed: no foreign key left on dmfa_person, its triggers instead."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL schema detail")
    with app.engine.connect() as connection:
        keys = connection.execute(text("SELECT count(*) FROM pg_constraint "
                                       "WHERE conrelid = 'dmfa_person'::regclass AND contype = 'f'")).scalar()
        triggers = set(connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
    assert keys == 0
    assert {"dmfa_person_inserted_references", "dmfa_person_updated_references",
            "person_referenced_by_dmfa_person", "dmfa_referenced_by_dmfa_person"} <= triggers


def test_a_worker_wrongly_said_to_be_in_person_fails_the_whole_dmfa(app):
    """store_dmfa's ``in_person`` (the workers M010's question found in stored periods) only spares inserting
    them into person: a worker in it by mistake is caught by dmfa_person's check, and nothing of the DmfA
    stays."""
    import sqlite3

    import psycopg

    from declarations import samples
    from declarations.xmlio.decoding import decode

    absent = samples.valid_inss(5)
    dmfa = decode(samples.dmfa(message_id="m", sender_id="1001", noss="123456749", quarter="20253", workers=[
        samples.worker(absent, sequence=1, occupations=[samples.occupation(start=dt.date(2025, 7, 1))])]))
    with app.engine.connect() as connection:
        # (the rows are sent on the driver's connection: its own error classes)
        refused = (IntegrityError, sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)
        with pytest.raises(refused, match="not in person|FOREIGN KEY constraint failed"), connection.begin():
            declaration_id = facts.new_declaration(connection, received_at=NOW, channel="CLI", original=b"x")
            facts.store_dmfa(connection, dmfa, declaration_id, "PROD", in_person={absent})
        assert _rows(connection) == 0
        assert connection.execute(select(func.count()).select_from(t.person)).scalar_one() == 0
