"""store.warmup: a new connection made ready for declarations' transactions writes nothing, holds nothing
afterwards, and leaves the statements it ran compiled for the next transaction."""

from __future__ import annotations

from sqlalchemy import func, select

from declarations.store import tables as t
from declarations.store.warmup import warm_up


def _counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in t.metadata.sorted_tables}


def test_warm_up_changes_nothing_and_compiles_ahead(app):
    before = _counts(app.engine)
    assert before["employer"] > 0  # the demo directory: something that could be touched
    compiled_before = len(app.engine._compiled_cache)

    with app.engine.connect() as connection:
        warm_up(connection)
        assert not connection.in_transaction()
        # The same connection goes on to a declaration's transaction as usual.
        with connection.begin():
            assert connection.execute(select(func.count()).select_from(t.declaration)).scalar_one() == 0

    assert _counts(app.engine) == before
    # The reads of a declaration's transaction were compiled (SQLAlchemy's cache is the engine's).
    assert len(app.engine._compiled_cache) >= compiled_before + 4
    # And no lock is left behind: another connection writes at once.
    with app.engine.begin() as other:
        other.execute(t.person.insert().values(inss="00000000097"))
    assert _counts(app.engine)["person"] == before["person"] + 1
