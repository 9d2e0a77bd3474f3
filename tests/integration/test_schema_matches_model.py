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
