"""The migrations (store/migrations) build exactly the schema tables.py describes, on both stores: a column,
an index or a constraint added to one and not the other shows here."""

from __future__ import annotations

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
