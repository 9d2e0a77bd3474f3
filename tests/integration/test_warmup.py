"""store.warmup: a new connection made ready for declarations' transactions writes nothing, holds nothing
afterwards, and leaves the statements it ran compiled for the next transaction."""

from __future__ import annotations

import os
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


def _in_a_forked_child(work) -> str:
    """``work()``'s text, as a process forked now (a batch worker) finds it; the child exits 1 if it raises."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.write(write, work().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    with os.fdopen(read) as answer:
        return answer.read()


def test_a_worker_forked_after_the_statements_were_compiled_compiles_none_of_them(app):
    """batch_items._compile_before_forking, before the workers are forked: the warm-up's statements are
    compiled once, in the forking process (and only once per engine); a process forked afterwards inherits
    them, and its own warm-up, on its own connection, compiles nothing more."""
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

    def worker() -> str:
        app.engine.dispose(close=False)
        with app.engine.connect() as connection:
            warm_up(connection)
        return str(len(app.engine._compiled_cache))

    assert _in_a_forked_child(worker) == str(compiled)


def test_each_declaration_examined_ahead_goes_the_whole_way(app):
    """examine.load_on_first_use: a Dimona, a DmfA and a SocialRisk, each signed, valid and decoded (a sample
    stopped earlier would leave what the later stages load to each worker's first declaration)."""
    from declarations.services.examine import load_on_first_use

    found = load_on_first_use(app.signer)
    assert [e.kind for e in found] == ["DIMONA", "DMFA", "DRS"]
    for examined in found:
        assert (examined.refusal, examined.xsd, examined.identifiers) == ([], [], [])
        assert examined.declaration is not None


# Run in a fresh interpreter (this module's other tests load the same things in this one): prepare_to_fork,
# then a fork whose first declaration must load nothing more.
_FORKED_AFTER_PREPARE = """
import os, sys
from pathlib import Path
from declarations.bootstrap import App
from declarations.services import batch_items
from declarations.settings import Settings

app = App(Settings.from_env(os.environ))
batch_items.prepare_to_fork(app)
app.engine.dispose()
document = Path(sys.argv[1]).read_bytes()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    status = 1
    try:
        from declarations.services.examine import examine
        from declarations.xmlio import decoding, schemas, signature
        compiled = []
        schemas._Pool._compile = lambda pool: compiled.append(pool.filename)
        ready = (getattr(decoding._THREAD, "persons_xslt", None) is not None,
                 signature._dsig_schema.cache_info().currsize == 1)
        modules = set(sys.modules)
        examined = examine(document, max_bytes=len(document))
        os.write(write, repr((examined.declaration is not None, *ready, compiled,
                              sorted(set(sys.modules) - modules))).encode())
        status = 0
    finally:
        os._exit(status)
os.close(write)
_, status = os.waitpid(pid, 0)
print(status, os.fdopen(read).read())
"""


def test_a_worker_forked_after_prepare_to_fork_examines_a_declaration_without_loading_anything(app, demo_signer,
                                                                                            tmp_path):
    """batch_items.prepare_to_fork: a worker forked afterwards compiles no schema and no stylesheet and imports
    no module for its first declaration (each fresh worker did, ~5-10 ms on the batch's critical path). In a
    fresh interpreter: in this one, earlier tests have loaded it all already."""
    import datetime as dt
    import subprocess
    import sys

    from declarations import samples

    day = dt.date(2025, 7, 1)
    document = tmp_path / "dmfa.xml"
    document.write_bytes(samples.to_bytes(demo_signer("sender-1001").sign(samples.dmfa(
        message_id="first", sender_id="1001", noss="555123433", quarter="20253",
        workers=[samples.worker(samples.valid_inss(7), sequence=1, occupations=[samples.occupation(start=day)])]))))
    env = {**os.environ, "DECLARATIONS_HOME": str(app.settings.home),
           "DECLARATIONS_DATABASE_URL": app.settings.database_url}
    run = subprocess.run([sys.executable, "-c", _FORKED_AFTER_PREPARE, str(document)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0 " + repr((True, True, True, [], []))
