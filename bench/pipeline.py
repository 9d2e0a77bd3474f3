"""Benchmark: declarations per second through ``submit``'s pipeline, in-process.

Measures, in one run and on the same signed documents:
- the pipeline (Ingest.submit: parse, verify, XSD, rules, store, sign the
  receipt) for Dimona and for a DmfA of N workers, on SQLite and PostgreSQL;
- the floor: lxml parse + XSD validation alone of the same bytes.
The ratio pipeline/floor is the figure to compare across machines.

    python bench/pipeline.py [--dimona 400] [--dmfa 4] [--workers 1000] [--backends sqlite,postgresql] [--count 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from declarations import samples  # noqa: E402
from declarations.bootstrap import App  # noqa: E402
from declarations.services import directory  # noqa: E402
from declarations.settings import Settings  # noqa: E402
from declarations.xmlio import keys, parsing, schemas  # noqa: E402
from declarations.xmlio.signature import Signer  # noqa: E402

NOW = "2025-11-15T10:00:00+01:00"
KEYS = REPO / "fixtures" / "demo" / "keys"
EMPLOYER = dict(sender_id="1001", noss="123456749", enterprise_nbr="0403179609")


def dimona_documents(count: int, signer: Signer) -> list[bytes]:
    return [samples.to_bytes(signer.sign(samples.dimona(
        "In", message_id=f"bench-dimona-{i}", **EMPLOYER, INSS=inss, StartingDate=dt.date(2025, 11, 15),
        JointCommissionNbr="302", WorkerType="OTH"))) for i, inss in enumerate(samples.inss_series(count))]


def dmfa_documents(count: int, workers: int, signer: Signer) -> list[bytes]:
    people = samples.inss_series(workers)
    quarters = []
    year, number = 2025, 3  # the last quarter declarable at NOW, then backwards
    for _ in range(count):
        quarters.append(f"{year}{number}")
        year, number = (year, number - 1) if number > 1 else (year - 1, 4)
    out = []
    for i, quarter in enumerate(quarters):
        year, number = int(quarter[:4]), int(quarter[4])
        start = dt.date(year, 3 * number - 2, 1)
        out.append(samples.to_bytes(signer.sign(samples.dmfa(
            message_id=f"bench-dmfa-{i}", **EMPLOYER, quarter=quarter, workers=[
                samples.worker(inss, sequence=n + 1, occupations=[samples.occupation(
                    start=start, jc="302", services=[("001", 6000)], remuns=[("001", 300000 + n)])])
                for n, inss in enumerate(people)]))))
    return out


def floor(documents: list[bytes]) -> float:
    """Seconds for lxml parse + XSD validation of every document."""
    begin = time.perf_counter()
    for data in documents:
        root = parsing.parse(data, max_bytes=0)
        schemas.schema_for(root.tag).validate(root)
    return time.perf_counter() - begin


def pipeline(app: App, documents: list[bytes]) -> tuple[float, list[str]]:
    statuses = []
    begin = time.perf_counter()
    for data in documents:
        statuses.append(app.ingest.submit(data, channel="CLI").outcome.status)
    return time.perf_counter() - begin, statuses


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by a local PostgreSQL backend, from /proc; 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_document(app: App, documents: list[bytes]) -> tuple[float, float, list[str]]:
    """Wall seconds, CPU seconds (this process + its PostgreSQL backend) and statuses for the documents.

    CPU time is the steadier figure on a shared machine: other engineers' load stretches the wall time but
    hardly the CPU a declaration costs. The pipeline runs one declaration at a time, so the pool hands out
    the same connection each time, whose backend is measured.
    """
    pid = None
    if app.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with app.engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    cpu, backend = time.process_time(), _backend_cpu(pid)
    seconds, statuses = pipeline(app, documents)
    return seconds, time.process_time() - cpu + _backend_cpu(pid) - backend, statuses


def statements_per_document(app: App, documents: list[bytes]) -> float:
    """SQL statements the pipeline sends per document (BEGIN/COMMIT not counted: they are not statements
    SQLAlchemy executes; SQLite's BEGIN IMMEDIATE, sent by the engine's begin hook, is)."""
    from sqlalchemy import event

    count = 0

    def counted(*_args):
        nonlocal count
        count += 1

    event.listen(app.engine, "before_cursor_execute", counted)
    try:
        for data in documents:
            app.ingest.submit(data, channel="CLI")
    finally:
        event.remove(app.engine, "before_cursor_execute", counted)
    return count / len(documents)


def fresh_app(backend: str, home: Path, pg) -> App:
    if backend == "sqlite":
        url = f"sqlite:///{home / f'bench-{time.monotonic_ns()}.db'}"
    else:
        url = pg.create_database(pg.unique_name("bench"))
    app = App(Settings.from_env({"DECLARATIONS_HOME": str(home), "DECLARATIONS_DATABASE_URL": url,
                                 "DECLARATIONS_NOW": NOW}))
    app.init()
    directory.load(app.engine, (REPO / "fixtures" / "demo" / "directory.xml").read_bytes())
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dimona", type=int, default=400)
    parser.add_argument("--dmfa", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--count", type=int, default=5,
                        help="SQL statements are counted (untimed) on this many documents of each set")
    args = parser.parse_args()
    signer = Signer.from_files(KEYS / "sender-1001.key.pem", KEYS / "sender-1001.cert.pem")
    print(f"building {args.dimona} Dimona and {args.dmfa} DmfA of {args.workers} workers...", file=sys.stderr)
    sets = {"Dimona": dimona_documents(args.dimona, signer),
            f"DmfA x{args.workers}": dmfa_documents(args.dmfa, args.workers, signer)}
    backends = args.backends.split(",")
    import pgserver
    pg = pgserver.start_for(backends)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        keys.ensure_engine_key(home)
        for name, documents in sets.items():
            if not documents:
                continue
            size = statistics.mean(len(d) for d in documents)
            floor_s = min(floor(documents) for _ in range(3))
            for backend in backends:
                app = fresh_app(backend, home, pg)
                pipeline(app, documents[:1])  # warm-up: imports, caches, first connection
                # Statements counted on the warm-up store, not timed: the next documents, as they come.
                statements = statements_per_document(app, documents[1:1 + args.count] or documents[:1])
                app.close()
                app = fresh_app(backend, home, pg)
                seconds, cpu, statuses = cpu_per_document(app, documents)
                app.close()
                refused = sum(s == "REFUSED" for s in statuses)
                rows.append((name, backend, len(documents), size, len(documents) / seconds,
                             len(documents) / floor_s, seconds / floor_s, refused, statements,
                             cpu / len(documents) * 1000))
    if pg is not None:
        pg.stop()
    print("| documents | store | n | mean size (bytes) | pipeline docs/s | floor docs/s (parse+XSD) | ratio | refused "
          "| SQL statements per doc | CPU ms per doc (engine + PG backend) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, backend, n, size, rate, floor_rate, ratio, refused, statements, cpu_ms in rows:
        print(f"| {name} | {backend} | {n} | {size:,.0f} | {rate:,.1f} | {floor_rate:,.1f} | {ratio:.1f}x | {refused} "
              f"| {statements:.1f} | {cpu_ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
