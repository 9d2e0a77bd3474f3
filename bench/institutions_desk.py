"""Benchmark: Consult latency under a steady request rate, on a large PostgreSQL store.

Loads N persons (default 1,000,000), each with one PROD employment period and
one register entry at ONEM (UNEMPLOYED, authorized for DIMONA), straight into
the tables with COPY. Then, at a fixed rate (default 300 requests/s, open
loop: latency counts from the moment a request was due, so a slow answer
delays the next ones and shows), several processes send:
- **consult**: ``InstitutionDesk.handle(Consult(... DIMONA ...))`` for random
  persons: MessageId claim, register and authorization reads, the periods,
  the access-log append (the log head row lock), commit;
- **floor**: the same rate of one transaction reading the person's periods
  with the same query, nothing else: what a Consult cannot go below.
Reports p50/p99/max for both and the ratio of the p99s.

    python bench/institutions_desk.py [--persons 1000000] [--rate 300] [--seconds 20] [--processes 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from declarations import samples  # noqa: E402
from declarations.bootstrap import App  # noqa: E402
from declarations.services import directory  # noqa: E402
from declarations.settings import Settings  # noqa: E402
from declarations.xmlio import keys  # noqa: E402

NOW = "2025-11-15T10:00:00+01:00"
THREADS = 8  # per process: enough in flight that a slow answer does not hold the schedule


def inss_of(n: int) -> str:
    """The n-th INSS of the bench (valid check digits), for n up to about 3 million."""
    day = dt.date(1950, 1, 1) + dt.timedelta(days=n // 998)
    return samples.valid_inss(n % 998, birth=day.strftime("%y%m%d"))


def load(app: App, persons: int) -> None:
    """COPY the persons, their periods (one version each) and their register entries."""
    raw = app.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("INSERT INTO declaration (id, received_at, channel, status, original, result) "
                       "VALUES (1, now(), 'CLI', 'ACCEPTED', '', '')")
        chunk = 200_000
        for first in range(0, persons, chunk):
            numbers = range(first, min(first + chunk, persons))
            rows = [(n + 1, inss_of(n), dt.date(2020, 1, 1) + dt.timedelta(days=n % 1500)) for n in numbers]
            for table, columns, line in (
                    ("person", "inss", lambda r: f"{r[1]}\n"),
                    ("employment_period", "period_id, scope, employer_noss, inss, worker_type, starting_date, "
                     "joint_commission, cancelled, version",
                     lambda r: f"{r[0]}\tPROD\t123456749\t{r[1]}\tOTH\t{r[2]}\t302\tf\t1\n"),
                    ("employment_period_version", "period_id, version, declaration_id, action, starting_date, "
                     "joint_commission, cancelled", lambda r: f"{r[0]}\t1\t1\tIN\t{r[2]}\t302\tf\n"),
                    ("register_entry", "institution_id, inss, capacity, valid_from",
                     lambda r: f"ONEM\t{r[1]}\tUNEMPLOYED\t2019-01-01\n")):
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write("".join(line(r) for r in rows))
            print(f"  loaded {first + len(numbers):,} persons", file=sys.stderr)
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('employment_period', 'period_id'), {persons})")
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def _worker(kind: str, url: str, home: str, persons: int, rate: float, seconds: float, start: float, seed: int,
            out) -> None:
    from sqlalchemy import text

    from declarations.domain import institution_messages as m

    app = App(Settings.from_env({"DECLARATIONS_HOME": home, "DECLARATIONS_DATABASE_URL": url,
                                 "DECLARATIONS_NOW": NOW}))
    desk = app.institutions
    floor_query = text("SELECT p.period_id FROM employment_period p JOIN employment_period_version v "
                       "ON v.period_id = p.period_id AND v.version = p.version WHERE p.inss = :inss "
                       "AND p.scope = 'PROD' AND NOT p.cancelled")
    latencies: list[float] = []
    lock = threading.Lock()
    refused = [0]

    def run_thread(t: int) -> None:
        rnd = random.Random(seed * 100 + t)
        interval = THREADS / rate
        due = start + t * interval / THREADS
        count = 0
        while due < start + seconds:
            now = time.time()
            if now < due:
                time.sleep(due - now)
            inss = inss_of(rnd.randrange(persons))
            if kind == "consult":
                answer = desk.handle(m.Consult(m.Caller("ONEM", f"b{seed}-{t}-{count}"), inss, "DIMONA",
                                               dt.date(2024, 1, 1), dt.date(2025, 12, 31)))
                if not isinstance(answer, m.ConsultResult) or len(answer.periods) != 1:
                    refused[0] += 1
            else:
                with app.engine.begin() as c:
                    c.execute(floor_query, {"inss": inss}).all()
            done = time.time()
            with lock:
                latencies.append(done - due)
            due += interval
            count += 1

    threads = [threading.Thread(target=run_thread, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    app.close()
    out.put((latencies, refused[0]))


def measure(kind: str, url: str, home: str, persons: int, rate: float, seconds: float, processes: int, seed: int):
    queue = multiprocessing.Queue()
    start = time.time() + 3.0
    workers = [multiprocessing.Process(target=_worker, args=(kind, url, home, persons, rate / processes, seconds,
                                                             start, seed + p, queue)) for p in range(processes)]
    for w in workers:
        w.start()
    latencies, refused = [], 0
    for _ in workers:
        got, bad = queue.get()
        latencies += got
        refused += bad
    for w in workers:
        w.join()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {"n": len(ms), "rate": len(ms) / seconds, "p50": statistics.median(ms),
            "p99": ms[int(len(ms) * 0.99) - 1], "max": ms[-1], "bad": refused}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    import pgserver

    pg = pgserver.start_postgres()
    if pg is None:
        print(f"no PostgreSQL: {pgserver.last_error}", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory() as tmp:
            keys.ensure_engine_key(Path(tmp))
            url = pg.create_database(pg.unique_name("bench_inst"))
            app = App(Settings.from_env({"DECLARATIONS_HOME": tmp, "DECLARATIONS_DATABASE_URL": url,
                                         "DECLARATIONS_NOW": NOW}))
            app.init()
            directory.load(app.engine, (REPO / "fixtures" / "demo" / "directory.xml").read_bytes())
            began = time.perf_counter()
            load(app, args.persons)
            print(f"loaded {args.persons:,} persons in {time.perf_counter() - began:.0f} s", file=sys.stderr)
            app.close()
            results = {}
            for kind in ("floor", "consult"):
                measure(kind, url, tmp, args.persons, args.rate, 2.0, args.processes, 7)  # warm-up
                results[kind] = measure(kind, url, tmp, args.persons, args.rate, args.seconds, args.processes, 1)
    finally:
        pg.stop()
    print(f"PostgreSQL (tests/pgserver.py), {args.persons:,} persons, {args.rate:.0f} requests/s offered for "
          f"{args.seconds:.0f} s, {args.processes} processes x {THREADS} threads")
    print("| run | requests | achieved/s | p50 ms | p99 ms | max ms | not as expected |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, r in results.items():
        print(f"| {kind} | {r['n']} | {r['rate']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['bad']} |")
    print(f"p99 ratio consult/floor: {results['consult']['p99'] / results['floor']['p99']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
