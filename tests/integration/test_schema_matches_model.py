"""The migrations (store/migrations) build exactly the schema tables.py describes, on both stores: a column,
an index or a constraint added to one and not the other shows here."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from declarations.store import tables as t

# PostgreSQL: migration 0005 replaced dmfa_person's two foreign keys by per-statement triggers on purpose.
_REPLACED_ON_POSTGRESQL = {"fk_dmfa_person_declaration_id_dmfa", "fk_dmfa_person_inss_person"}


def test_the_migrated_store_is_the_model(app):
    with app.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), t.metadata)
        dialect = connection.dialect.name
    if dialect == "postgresql":
        differences = [d for d in differences
                       if not (d[0] == "add_fk" and d[1].name in _REPLACED_ON_POSTGRESQL)]
    assert differences == []


def test_going_back_before_0006_leaves_the_originals_as_received(app):
    """Migration 0006's downgrade writes the bytes as received back into declaration.original before it
    drops original_coding: an engine of before reads the column as it is."""
    from alembic import command
    from sqlalchemy import select

    from declarations.services.archive import archived
    from declarations.store import facts, originals, schema

    message = b"<DmfA>" + b"<x/>" * 20000 + b"</DmfA>"
    packed = originals.pack(message)
    assert packed.coding == originals.ZLIB  # stored compressed: what the downgrade must undo
    with app.engine.begin() as c:
        declaration_id = facts.new_declaration(
            c, received_at=dt.datetime(2025, 11, 15, tzinfo=dt.timezone.utc), channel="CLI", original=packed.data,
            original_coding=packed.coding)
    config = schema.alembic_config(app.engine)
    with app.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    with app.engine.connect() as c:
        assert bytes(c.execute(select(t.declaration.c.original).where(t.declaration.c.id == declaration_id))
                     .scalar_one()) == message
    schema.upgrade(app.engine)  # and forward again: kept as received, and read back so
    with app.engine.connect() as c:
        assert c.execute(select(t.declaration.c.original_coding)
                         .where(t.declaration.c.id == declaration_id)).scalar_one() is None
    assert archived(app.engine, declaration_id).original == message


def test_0008_moves_a_dmfas_repeating_groups_into_their_parents_and_back(app):
    """A DmfA stored as the engine stores it (arrays in the parent rows); migration 0008's downgrade gives each
    service, remuneration and contribution its own row again, in its place, and its upgrade puts them back:
    the same values, in the same order, on both stores (a service without hours, a record without
    contributions, an occupation without services or remunerations included)."""
    import dataclasses

    from alembic import command
    from sqlalchemy import select, text

    from declarations import samples
    from declarations.store import facts, schema
    from declarations.xmlio.decoding import decode

    dmfa = decode(samples.dmfa(
        message_id="m", sender_id="1001", noss="123456749", quarter="20253", workers=[
            samples.worker(f"9{n:010d}", sequence=n + 1, occupations=[samples.occupation(
                k + 1, start=dt.date(2025, 7, 1), jc="302", services=[("001", 6000), ("002", 120)][:n],
                remuns=[("001", 300000 + n), ("002", 77)][:2 - n]) for k in range(2)])
            for n in range(3)]))
    # Worker n has n services and 2 - n remunerations per occupation; worker 3's second service gets hours;
    # worker 1 a second worker record without contributions.
    first, second, third = dmfa.persons
    occupation = third.worker_records[0].occupations[0]
    occupation = dataclasses.replace(occupation, services=(
        occupation.services[0], dataclasses.replace(occupation.services[1], hours=3)))
    third = dataclasses.replace(third, worker_records=(dataclasses.replace(
        third.worker_records[0], occupations=(occupation,) + third.worker_records[0].occupations[1:]),))
    first = dataclasses.replace(first, worker_records=(
        first.worker_records[0], dataclasses.replace(first.worker_records[0], contributions=())))
    dmfa = dataclasses.replace(dmfa, persons=(first, second, third))
    with app.engine.begin() as c:
        declaration_id = facts.new_declaration(c, received_at=dt.datetime(2025, 11, 15, tzinfo=dt.timezone.utc),
                                               channel="CLI", original=b"x")
        facts.store_dmfa(c, dmfa, declaration_id, "PROD")

    def parents() -> dict:
        with app.engine.connect() as c:
            return {table.name: c.execute(select(table).order_by(*table.primary_key.columns)).all()
                    for table in (t.dmfa_worker_record, t.dmfa_occupation)}

    stored = parents()
    assert any(not row.contribution_codes for row in stored["dmfa_worker_record"])
    assert any(row.service_hours == [None, 3] for row in stored["dmfa_occupation"])
    assert any(not row.service_codes for row in stored["dmfa_occupation"])
    config = schema.alembic_config(app.engine)
    with app.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    expected = {
        "dmfa_service": sorted((p.sequence, r_nbr, o.sequence, i, s.code, s.days, s.hours)
                               for p in dmfa.persons for r_nbr, r in enumerate(p.worker_records, 1)
                               for o in r.occupations for i, s in enumerate(o.services, 1)),
        "dmfa_remuneration": sorted((p.sequence, r_nbr, o.sequence, i, m.code, m.amount)
                                    for p in dmfa.persons for r_nbr, r in enumerate(p.worker_records, 1)
                                    for o in r.occupations for i, m in enumerate(o.remuns, 1)),
        "dmfa_contribution": sorted((p.sequence, r_nbr, i, x.code, x.base, x.amount)
                                    for p in dmfa.persons for r_nbr, r in enumerate(p.worker_records, 1)
                                    for i, x in enumerate(r.contributions, 1)),
    }
    assert all(expected.values())
    with app.engine.connect() as c:
        for table, rows in expected.items():
            found = c.execute(text(f"SELECT * FROM {table} WHERE declaration_id = :d"), {"d": declaration_id}).all()
            assert sorted(tuple(row)[1:] for row in found) == rows, table
        assert "service_codes" not in {col["name"] for col in _columns(c, "dmfa_occupation")}
    schema.upgrade(app.engine)
    assert parents() == stored
    arrays = {t.dmfa_worker_record: ("contribution_codes", "contribution_bases", "contribution_amounts"),
              t.dmfa_occupation: ("service_codes", "service_days", "service_hours", "remuneration_codes",
                                  "remuneration_amounts")}
    with app.engine.connect() as c:  # the engine writes every array: no default left behind (as tables.py says)
        for table, names in arrays.items():
            defaults = {col["name"]: col["default"] for col in _columns(c, table.name)}
            assert [defaults[name] for name in names] == [None] * len(names), table.name


def _columns(connection, table: str) -> list[dict]:
    from sqlalchemy import inspect
    return inspect(connection).get_columns(table)
