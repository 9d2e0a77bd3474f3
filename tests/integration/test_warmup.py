"""store.warmup: a new connection made ready for declarations' transactions writes nothing, holds nothing
afterwards, and leaves the statements it ran compiled for the next transaction."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from declarations.domain.model import Quarter
from declarations.store import tables as t
from declarations.store.institutions import anyone_subscribed
from declarations.store.views import StoredView, sender_view
from declarations.store.warmup import warm_up


def _counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in t.metadata.sorted_tables}


def test_warm_up_changes_nothing_and_compiles_ahead(app):
    before = _counts(app.engine)
    assert before["employer"] > 0  # the demo directory: something that could be touched

    with app.engine.connect() as connection:
        warm_up(connection)
        assert not connection.in_transaction()
        # No lock is left behind: another connection writes at once, while this one is still out of the pool.
        written = threading.Event()
        threading.Thread(target=_write_a_person, args=(app.engine, written), daemon=True).start()
        assert written.wait(10), "a write waited for the warmed-up connection"
        # The reads of a declaration's transaction were compiled: run for real, they compile nothing more
        # (SQLAlchemy's cache is the engine's).
        compiled = len(app.engine._compiled_cache)
        with connection.begin():
            view = StoredView(connection, t.PROD)
            view.current_dmfa("555123433", Quarter(2025, 3))
            sender_view(connection, "1001", "a-message", "555123433")
            anyone_subscribed(connection, "DMFA")
            assert connection.execute(select(func.count()).select_from(t.declaration)).scalar_one() == 0
        assert len(app.engine._compiled_cache) == compiled

    assert _counts(app.engine) == {**before, "person": before["person"] + 1}


def _write_a_person(engine, written: threading.Event) -> None:
    with engine.begin() as other:
        other.execute(t.person.insert().values(inss="00000000097"))
    written.set()


def test_a_worker_forked_after_the_statements_were_compiled_compiles_none_of_them(app):
    """batch_items._compile_before_forking, before the workers are forked: the warm-up's statements are
    compiled once, in the forking process (and only once per engine); a process forked afterwards inherits
    them, and its own warm-up, on its own connection, compiles nothing more."""
    import os

    from sqlalchemy import event

    from declarations.services import batch_items

    batch_items._compile_before_forking(app.engine)
    compiled = len(app.engine._compiled_cache)
    assert compiled > 0
    checkouts = []
    event.listen(app.engine, "checkout", lambda *_: checkouts.append(1))
    batch_items._compile_before_forking(app.engine)
    assert checkouts == []  # once per engine
    app.engine.dispose()  # as start_workers does: no connection crosses the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        status = 1
        try:
            app.engine.dispose(close=False)
            with app.engine.connect() as connection:
                warm_up(connection)
            os.write(write, str(len(app.engine._compiled_cache)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    with os.fdopen(read) as answer:
        assert answer.read() == str(compiled)
