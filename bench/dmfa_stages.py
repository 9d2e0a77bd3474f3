"""What a 1,000-worker DmfA costs after examine, stage by stage, in-process (never in the test suite).

    python bench/dmfa_stages.py [--backends sqlite,postgresql] [--count 20] [--dimona none|covered] [--tree DIR]
                                [--unprepared]

``--tree``: the source tree measured (its ``declarations`` and ``bench/batch.py``; default: this one), e.g. a
main checkout, to compare with a branch in the same conditions.

On the batch benchmark's DmfA (bench/batch.py ``dmfa_items(signer_2001(), 1000, 1000)``, employer 555123433,
quarter 2025 Q3), decoded once, on a fresh store of each backend (PostgreSQL: tests/pgserver.py), best and
median of ``--count`` runs, in ms:
- rules: ``kind_rules`` inside a transaction against the store (its two reads included), wall of the whole
  transaction, then the CPU of ``kind_rules`` alone; with what ``prepare_rules`` found beforehand, as
  ``Ingest.submit`` does, where the tree has it (not with ``--unprepared``: the rules whole, as before);
- prepare: ``prepare_rules``, the CPU it takes before the transaction (n/a: not in the tree, or unprepared);
- store: ``facts.store_dmfa`` in a transaction rolled back afterwards (wall, and this process's CPU: on
  PostgreSQL the rest is the server's);
- result: ``result_element``, then with ``Signer.sign`` and ``to_bytes`` (the engine's key).
``--dimona covered``: every worker has an open Dimona period (bench/batch.py ``cover_with_dimona``), so no M010;
``none``: one M010 warning per worker, 1,000 anomalies in the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if "--tree" in sys.argv:  # before the imports below: they come from that tree
    REPO = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import batch  # noqa: E402
from declarations import samples  # noqa: E402
from declarations.bootstrap import App  # noqa: E402
from declarations.domain.outcome import Outcome  # noqa: E402
from declarations.domain import rules as rules_package  # noqa: E402
from declarations.domain.rules import RuleContext, kind_rules  # noqa: E402
from declarations.services import directory  # noqa: E402
from declarations.services.examine import examine  # noqa: E402
from declarations.settings import Settings  # noqa: E402
from declarations.store import facts  # noqa: E402
from declarations.store.views import StoredView  # noqa: E402
from declarations.xmlio import keys  # noqa: E402
from declarations.xmlio.results import result_element, to_bytes  # noqa: E402


def _ms(samples_s: list[float]) -> str:
    return f"{min(samples_s) * 1000:.1f} / {statistics.median(samples_s) * 1000:.1f}"


def _runs(count: int, fn, clock=time.perf_counter) -> list[float]:
    out = []
    for _ in range(count):
        begin = clock()
        fn()
        out.append(clock() - begin)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--dimona", default="none", choices=["none", "covered"])
    parser.add_argument("--tree", help="the source tree measured (default: this one)")
    parser.add_argument("--unprepared", action="store_true",
                        help="the rules whole in the transaction, nothing prepared before it")
    args = parser.parse_args()
    dmfa = examine(samples.to_bytes(next(batch.dmfa_items(batch.signer_2001(), 1000, 1000))), max_bytes=0).declaration
    backends = args.backends.split(",")
    day = dt.date(2025, 11, 15)
    prepare_rules = None if args.unprepared else getattr(rules_package, "prepare_rules", None)
    import pgserver
    pg = pgserver.start_for(backends)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        keys.ensure_engine_key(home)
        for backend in backends:
            url = f"sqlite:///{home / 'stages.db'}" if backend == "sqlite" else pg.create_database(pg.unique_name("st"))
            app = App(Settings.from_env({"DECLARATIONS_HOME": str(home), "DECLARATIONS_DATABASE_URL": url,
                                         "DECLARATIONS_NOW": batch.NOW}))
            app.init()
            directory.load(app.engine, (REPO / "fixtures" / "demo" / "directory.xml").read_bytes())
            if args.dimona == "covered":
                batch.cover_with_dimona(app.engine, batch.secretariat_employers(1), batch.employer_workers(1000, 1))
            now = app.settings.now()
            found: list = []
            rules_cpu: list[float] = []
            prepared = prepare_rules(dmfa, day) if prepare_rules is not None else None

            def rules():
                with app.engine.begin() as connection:
                    context = RuleContext(today=day, stored=StoredView(connection, "PROD"))
                    cpu = time.process_time()
                    found[:] = (kind_rules(dmfa, context) if prepared is None
                                else kind_rules(dmfa, context, prepared))
                    rules_cpu.append(time.process_time() - cpu)

            store_wall, store_cpu = [], []

            def store():
                with app.engine.connect() as connection:
                    transaction = connection.begin()
                    declaration_id = facts.new_declaration(connection, received_at=now, channel="CLI",
                                                           original=b"x")
                    wall, cpu = time.perf_counter(), time.process_time()
                    facts.store_dmfa(connection, dmfa, declaration_id, "PROD")
                    store_wall.append(time.perf_counter() - wall)
                    store_cpu.append(time.process_time() - cpu)
                    transaction.rollback()

            def outcome():
                return Outcome(declaration_id=12345, received_at=now, anomalies=tuple(found), message_id="m",
                               sender_id="2001", kind="DMFA", environment="PROD")

            rules_s = _runs(args.count, rules)
            prepare_s = (_runs(args.count, lambda: prepare_rules(dmfa, day), time.process_time)
                         if prepare_rules is not None else None)
            for _ in range(args.count):
                store()
            element_s = _runs(args.count, lambda: result_element(outcome()))
            signed_s = _runs(args.count, lambda: to_bytes(app.signer.sign(result_element(outcome()))))
            rows.append((backend, len(found), rules_s, rules_cpu, prepare_s, store_wall, store_cpu, element_s,
                         signed_s))
            app.close()
    if pg is not None:
        pg.stop()
    print(f"tree {REPO}, --dimona {args.dimona}{' --unprepared' if args.unprepared else ''}, "
          f"best / median of {args.count} (ms)")
    print("| store | anomalies | rules (transaction, wall) | rules (CPU in it) | prepare (CPU, before it) "
          "| store_dmfa (wall) | store_dmfa (CPU, this process) | result_element | + sign + to_bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend, anomalies, *figures in rows:
        print(f"| {backend} | {anomalies} | " + " | ".join("n/a" if f is None else _ms(f) for f in figures) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
