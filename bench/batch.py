"""Batch files for the inbox: a generator (also used by the tests) and the batch benchmark.

Generator: DmfA (or Dimona) declarations from the social secretariat 2001 for
employer 555123433 of the demo directory, each signed with the demo key of
sender 2001 (EC P-256), written one after the other into a Batch file (plain
or gzip), optionally with a share of invalid items (a wrong INSS: C001).

Benchmark (never in the test suite):

    python bench/batch.py [--sizes 10000,40000,160000] [--workers-per-dmfa 1000] [--backends sqlite,postgresql]

For each size (workers in the file), on each store: the end-to-end time of
``declarations batch run``'s work (process_inbox_once, in a subprocess whose
peak RSS is its VmHWM), and the floor: lxml iterparse + XSD
validation of each declaration of the same file, nothing else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from lxml import etree  # noqa: E402

from declarations import ns, samples  # noqa: E402

NOW = "2025-11-15T10:00:00+01:00"
KEYS = REPO / "fixtures" / "demo" / "keys"
SECRETARIAT = dict(sender_id="2001", noss="555123433", enterprise_nbr="0876920184")


def signer_2001():
    from declarations.xmlio.signature import Signer
    return Signer.from_files(KEYS / "sender-2001.key.pem", KEYS / "sender-2001.cert.pem")


def quarters(count: int) -> list[str]:
    """The last quarter declarable on 2025-11-15 (2025 Q3), then backwards."""
    out, year, number = [], 2025, 3
    for _ in range(count):
        out.append(f"{year}{number}")
        year, number = (year, number - 1) if number > 1 else (year - 1, 4)
    return out


def secretariat_employers(count: int) -> list[tuple[str, str]]:
    """(NOSS, enterprise number) of ``count`` employers of secretariat 2001: the demo's 555123433, then
    generated ones with valid check digits (``directory_with`` puts them in the directory)."""
    out = [(SECRETARIAT["noss"], SECRETARIAT["enterprise_nbr"])]
    for n in range(1, count):
        base = 7_000_000 + n
        noss = f"{base:07d}{96 - (base * 100) % 97:02d}"
        enterprise = f"0{3_000_000 + n:07d}"
        out.append((noss, f"{enterprise}{97 - int(enterprise) % 97:02d}"))
    return out


def directory_with(employers: list[tuple[str, str]]) -> bytes:
    """The demo directory, plus each employer not in it, with a mandate of sender 2001 for DmfA."""
    from declarations.xmlio.parsing import parse
    root = parse((REPO / "fixtures" / "demo" / "directory.xml").read_bytes())
    d = f"{{{ns.DIRECTORY}}}"
    known = {e.findtext(f"{d}NOSSRegistrationNbr") for e in root.iter(f"{d}Employer")}
    last_employer, last_mandate = list(root.iter(f"{d}Employer"))[-1], list(root.iter(f"{d}Mandate"))[-1]
    for noss, enterprise in employers:
        if noss in known:
            continue
        employer = etree.Element(f"{d}Employer")
        for name, value in (("NOSSRegistrationNbr", noss), ("EnterpriseNbr", enterprise), ("Name", f"Bench {noss}")):
            etree.SubElement(employer, f"{d}{name}").text = value
        last_employer.addnext(employer)
        last_employer = employer
        mandate = etree.Element(f"{d}Mandate")
        for name, value in (("SenderId", "2001"), ("NOSSRegistrationNbr", noss), ("Kind", "DMFA"),
                            ("From", "2020-01-01")):
            etree.SubElement(mandate, f"{d}{name}").text = value
        last_mandate.addnext(mandate)
        last_mandate = mandate
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def employer_workers(per_dmfa: int, employers: int) -> list[list[str]]:
    """The INSS of each employer's workers, as ``dmfa_items`` declares them."""
    people = samples.inss_series(per_dmfa * employers)
    return [people[e * per_dmfa:(e + 1) * per_dmfa] for e in range(employers)]


def cover_with_dimona(engine, employers: list[tuple[str, str]], workers: list[list[str]]) -> int:
    """Give every worker an open Dimona period (PROD, since 1980) at its employer, as the law wants
    before a DmfA declares them (else each gets an M010 warning). Written straight into the store (one
    placeholder declaration per employer): setup, not measured. Returns the number of periods."""
    from sqlalchemy import text
    from declarations.store import tables as t
    since = dt.date(1980, 1, 1)  # before the oldest quarter a one-employer file goes back to
    period_id = 0
    with engine.begin() as connection:
        connection.execute(t.person.insert(), [{"inss": i} for people in workers for i in people])
        for (noss, _enterprise), people in zip(employers, workers):
            declaration = connection.execute(t.declaration.insert().values(
                received_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), channel="CLI", kind="DIMONA",
                sender_id="2001", environment="PROD", status="ACCEPTED", original=b"<bench/>", result=b"<bench/>",
            ).returning(t.declaration.c.id)).scalar_one()
            first = period_id + 1
            period_id += len(people)
            ids = range(first, period_id + 1)
            connection.execute(t.employment_period.insert(), [dict(
                period_id=p, scope="PROD", employer_noss=noss, inss=inss, worker_type="OTH", starting_date=since,
                ending_date=None, joint_commission="302", planned_hours=None, cancelled=False, version=1)
                for p, inss in zip(ids, people)])
            connection.execute(t.employment_period_version.insert(), [dict(
                period_id=p, version=1, declaration_id=declaration, action="IN", starting_date=since,
                ending_date=None, joint_commission="302", planned_hours=None, cancelled=False) for p in ids])
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT setval(pg_get_serial_sequence('employment_period', 'period_id'), "
                                    ":last)"), {"last": period_id})
    return period_id


def dmfa_items(signer, workers: int, per_dmfa: int, *, prefix: str = "bdmfa", invalid_every: int = 0,
               sender_id: str = "2001", employers: int = 1) -> Iterator[etree._Element]:
    """Signed DmfAs totalling ``workers`` workers, ``per_dmfa`` each. DmfA i is employer i % ``employers``'s
    (``secretariat_employers``), for the i // ``employers``-th quarter back from 2025 Q3: one employer
    declares a quarter after the other, many employers declare the same quarter (as a secretariat's
    quarterly file does). Each employer has its own workers.
    ``invalid_every``: every n-th DmfA carries a wrong INSS (refused, C001)."""
    count = -(-workers // per_dmfa)
    owners = secretariat_employers(employers)
    staff = employer_workers(per_dmfa, employers)
    back = quarters(-(-count // employers))
    for i in range(count):
        e = i % employers
        quarter = back[i // employers]
        size = min(per_dmfa, workers - i * per_dmfa)
        year, number = int(quarter[:4]), int(quarter[4])
        start = dt.date(year, 3 * number - 2, 1)
        inss = list(staff[e][:size])
        if invalid_every and (i + 1) % invalid_every == 0:
            inss[0] = inss[0][:-2] + f"{(int(inss[0][-2:]) + 1) % 100:02d}"
        noss, enterprise = owners[e]
        yield signer.sign(samples.dmfa(
            message_id=f"{prefix}-{i}", sender_id=sender_id, noss=noss, enterprise_nbr=enterprise,
            quarter=quarter, workers=[
                samples.worker(p, sequence=n + 1, occupations=[samples.occupation(
                    start=start, jc="302", services=[("001", 6000)], remuns=[("001", 300000 + n)])])
                for n, p in enumerate(inss)]))


def dimona_items(signer, count: int, *, prefix: str = "bdim", sender_id: str = "2001",
                 bad: Iterable[int] = ()) -> list[etree._Element]:
    """``count`` signed Dimona In for employer 555123433; positions (0-based) in ``bad`` get a wrong INSS."""
    bad = set(bad)
    out = []
    for i, inss in enumerate(samples.inss_series(count)):
        if i in bad:
            inss = inss[:-2] + f"{(int(inss[-2:]) + 1) % 100:02d}"
        out.append(signer.sign(samples.dimona(
            "In", message_id=f"{prefix}-{i}", **{**SECRETARIAT, "sender_id": sender_id}, INSS=inss,
            StartingDate=dt.date(2025, 11, 15), JointCommissionNbr="302", WorkerType="OTH")))
    return out


def header_bytes(batch_id: str, sender_id: str, item_count: int) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch xmlns="{ns.BATCH}">\n<BatchHeader>'
            f"<BatchId>{batch_id}</BatchId><SenderId>{sender_id}</SenderId>"
            f"<CreationDateTime>2025-11-15T09:00:00+01:00</CreationDateTime>"
            f"<ItemCount>{item_count}</ItemCount></BatchHeader>\n").encode()


def write_batch(path: Path, *, batch_id: str, items: Iterable[etree._Element], item_count: int,
                sender_id: str = "2001") -> Path:
    """Stream a Batch file (gzip when ``path`` ends with .gz), one declaration at a time."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as out:
        out.write(header_bytes(batch_id, sender_id, item_count))
        for item in items:
            out.write(etree.tostring(item))
            out.write(b"\n")
        out.write(b"</Batch>\n")
    return path


def batch_bytes(*, batch_id: str, items: list[etree._Element], item_count: int | None = None,
                sender_id: str = "2001") -> bytes:
    body = b"".join(etree.tostring(i) + b"\n" for i in items)
    return header_bytes(batch_id, sender_id, len(items) if item_count is None else item_count) + body + b"</Batch>\n"


def put(inbox: Path, name: str, data: bytes, *, gz: bool = False, go: bytes | None = None) -> Path:
    """Put NAME.xml[.gz] then NAME.go (the SHA-256, or ``go`` as given) in ``inbox``, as a sender would."""
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / f"{name}.xml{'.gz' if gz else ''}"
    path.write_bytes(data)
    (inbox / f"{name}.go").write_bytes(go if go is not None else hashlib.sha256(data).hexdigest().encode() + b"\n")
    return path


def put_file(inbox: Path, name: str, source: Path) -> Path:
    """``put`` for a large file: copied and hashed a chunk at a time (never whole in memory)."""
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / f"{name}.xml"
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(path, "wb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    (inbox / f"{name}.go").write_bytes(digest.hexdigest().encode() + b"\n")
    return path


# --- the benchmark -----------------------------------------------------------

def floor(path: Path, *, per_element: bool = False) -> float:
    """Seconds for lxml iterparse + XSD validation of each declaration of the file, nothing else.

    The iterparse is the batch's own reader (services/batch_scan.stream_children: lxml reports only the
    root's children), so that a faster reader in the batch makes the floor faster too.
    ``per_element``: session 1's floor instead (parsing.stream_children, one event per element)."""
    from declarations.services.batch_scan import stream_children as _stream_children
    from declarations.xmlio import parsing, schemas

    begin = time.perf_counter()
    with open(path, "rb") as stream:
        children = parsing.stream_children(stream) if per_element else _stream_children(stream)
        next(children)
        for element in children:
            schemas.schema_for(element.tag).validate(etree.ElementTree(element))
    return time.perf_counter() - begin


def _rss_kib(pid: int, field: str = "VmRSS:") -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# Linux 3.5+ lists each task's children in /proc (CONFIG_PROC_CHILDREN).
_CHILDREN_LISTED = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
    except OSError:  # gone meanwhile
        pass
    return found


def _descendants(pid: int) -> list[int]:
    """The process's children, grandchildren... (the batch's worker processes), from /proc: each process's
    list of children where the kernel keeps one (~0.05 ms a sample), else every process's parent (~1.2 ms a
    sample here, every 50 ms: a few percent of a core taken from the batch it measures)."""
    if not _CHILDREN_LISTED:
        return _descendants_by_scan(pid)
    out, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        out += children
        todo += children
    return out


def _descendants_by_scan(pid: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents.setdefault(int(stat.read().rpartition(")")[2].split()[1]), []).append(int(entry))
            except OSError:
                continue
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cpu_seconds(pid: int, *, with_reaped: bool) -> float:
    """A process's CPU time (user + system), and with ``with_reaped`` that of its children it has waited
    for (a PostgreSQL backend's, once its connection closed)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:  # gone meanwhile
        return 0.0
    ticks = sum(int(f) for f in fields[11:15 if with_reaped else 13])  # utime stime [cutime cstime]
    return ticks / os.sysconf("SC_CLK_TCK")


def postmaster_pid(pg) -> int | None:
    """The benchmark's own PostgreSQL server's main process, or None without one."""
    pid_file = pg.tmpdir / "data" / "postmaster.pid" if pg is not None and pg.tmpdir else None
    if pid_file is None or not pid_file.exists():
        return None
    return int(pid_file.read_text().split()[0])


def postgres_cpu_seconds(postmaster: int) -> float:
    """The CPU the PostgreSQL server has used so far: its postmaster, the backends alive and those gone."""
    return _cpu_seconds(postmaster, with_reaped=True) + sum(
        _cpu_seconds(child, with_reaped=False) for child in _children(postmaster))


class _TreePeak:
    """Peak memory of this process and its worker processes together: the largest sum of their RSS,
    sampled every 50 ms, and at least this process's own VmHWM. Not ru_maxrss: Linux carries the
    parent's high-water mark over fork + exec into it (the benchmark's parent had the whole file in
    memory when it forked), while VmHWM belongs to the address space exec made."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        me = os.getpid()
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, sum(_rss_kib(p) for p in [me, *_descendants(me)]))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss_kib(os.getpid(), "VmHWM:"))


def _child(home: str, url: str, profile: str | None = None, kept: bool = False,
           postmaster: int | None = None) -> None:
    """In the measured subprocess: process the inbox once, print seconds and peak RSS (all processes).
    ``profile``: a path where the cProfile stats of process_inbox_once are dumped. ``kept``: as ``serve``
    does it, with worker processes started before the file comes (when its watcher starts) and kept.
    ``postmaster``: the PostgreSQL server's, whose CPU is read around the batch (its connections' start and
    warm-up before it are not the batch's)."""
    from declarations.bootstrap import App
    from declarations.services.batch import process_inbox_once
    from declarations.services.batch_items import BatchWorkers
    from declarations.settings import Settings

    app = App(Settings.from_env({**os.environ, "DECLARATIONS_HOME": home, "DECLARATIONS_DATABASE_URL": url,
                                 "DECLARATIONS_NOW": NOW}))
    # The engine is up before the clock starts, as `serve`'s is when a file arrives: the store's driver and
    # the services are loaded (start-up of the process, paid once by `serve`, once per run by `batch run`:
    # psycopg's and the crypto backend's imports, ~0.05-0.08 s, were inside the first batch's time until
    # session 7).
    app.ingest  # noqa: B018
    workers = BatchWorkers(app, keep=kept)
    if kept:  # serve's watcher starts them; the file comes later (their start-up is not the file's)
        workers.start(app.settings.batch_workers)
        time.sleep(0.5)  # forked, connected and warm
    elif app.settings.batch_workers > 1:
        workers.prepare()  # as `batch run` does at its start (channels/batch/commands.py)
    with app.engine.connect():  # (after the fork, which empties this process's pool)
        pass
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    peak = _TreePeak()
    kept_before = sum(_cpu_seconds(pid, with_reaped=False) for pid in _descendants(os.getpid()))
    server_before = postgres_cpu_seconds(postmaster) if postmaster else 0.0
    before = os.times()
    begin = time.perf_counter()
    summaries = process_inbox_once(app, workers=workers)
    seconds = time.perf_counter() - begin
    server_cpu = postgres_cpu_seconds(postmaster) - server_before if postmaster else 0.0
    rss = peak.stop()
    if not kept:  # batch run's workers exit on their own once the file is done: their CPU counts once they have
        deadline = time.monotonic() + 10
        while _descendants(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _descendants(os.getpid()):
            print("warning: worker processes still running 10 s after the batch; their CPU is read from /proc",
                  file=sys.stderr)
    after = os.times()
    # Kept workers are alive still: their CPU is read from /proc (a worker's CPU reaches os.times() only
    # once it has exited and been waited for).
    kept_cpu = sum(_cpu_seconds(pid, with_reaped=False) for pid in _descendants(os.getpid())) - kept_before
    workers.close()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    app.close()
    print(json.dumps({"seconds": seconds, "rss_kib": rss, "workers": app.settings.batch_workers,
                      "cpu_self": after.user + after.system - before.user - before.system,
                      "cpu_workers": after.children_user + after.children_system - before.children_user
                      - before.children_system + kept_cpu, "cpu_server": server_cpu,
                      "parallel_min_bytes": app.settings.batch_parallel_min_bytes,
                      "outcomes": [s.outcome for s in summaries], "counts": [s.counts for s in summaries]}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,40000,160000")
    parser.add_argument("--workers-per-dmfa", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--employers", default="all,1",
                        help="comma-separated: the DmfAs spread over this many employers of the secretariat; "
                             "'all': one employer per DmfA, all for one quarter (a secretariat's quarterly file); "
                             "1: one employer, one quarter after the other (its items run one at a time)")
    parser.add_argument("--dimona", default="covered", choices=["covered", "none"],
                        help="covered: every worker has a Dimona period at its employer (as the law wants); "
                             "none: no Dimona, so each worker gets an M010 warning (the answer carries one "
                             "anomaly per worker)")
    parser.add_argument("--batch-workers", default="",
                        help="comma-separated DECLARATIONS_BATCH_WORKERS values to run (default: the engine's "
                             "default, one per CPU)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each configuration, each on a fresh store with its own floor; with more "
                             "than one, a last table gives the median and the spread of the ratios")
    parser.add_argument("--profile", metavar="DIR",
                        help="dump cProfile stats of each run to DIR/<size>-<backend>.prof (slower; not for figures)")
    parser.add_argument("--workers-kept", default="no", choices=["no", "yes", "both"],
                        help="yes: the worker processes are started before the file comes and kept, as "
                             "`serve` does (batch_items.BatchWorkers); no: started for the file, as `batch "
                             "run` does; both: each run both ways, one after the other")
    parser.add_argument("--child", nargs=2, metavar=("HOME", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", help=argparse.SUPPRESS)
    parser.add_argument("--child-kept", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-postmaster", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child, profile=args.child_profile, kept=args.child_kept, postmaster=args.child_postmaster)
        return 0
    from declarations.bootstrap import App
    from declarations.services import directory
    from declarations.settings import Settings
    from declarations.xmlio import keys

    backends = args.backends.split(",")
    import pgserver
    pg = pgserver.start_for(backends)
    signer = signer_2001()
    worker_counts = [w for w in args.batch_workers.split(",") if w] or [""]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in [int(s) for s in args.sizes.split(",")]:
            count = -(-size // args.workers_per_dmfa)
            for spread in args.employers.split(","):
                employers = count if spread == "all" else int(spread)
                source = work / f"bench-{size}.xml"
                print(f"generating {size} workers, {employers} employer(s)...", file=sys.stderr)
                write_batch(source, batch_id=f"bench-{size}", item_count=count,
                            items=dmfa_items(signer, size, args.workers_per_dmfa, prefix=f"b{size}",
                                             employers=employers))
                world = directory_with(secretariat_employers(employers))
                # Each run: its own store, its own floor measured just before and after it.
                modes = {"no": [False], "yes": [True], "both": [False, True]}[args.workers_kept]
                for backend, batch_workers, run, kept in ((b, w, r, k) for b in backends for w in worker_counts
                                                          for r in range(args.repeat) for k in modes):
                    home = work / f"home-{size}-{employers}-{backend}-{batch_workers}-{run}-{kept}"
                    keys.ensure_engine_key(home)
                    url = (f"sqlite:///{home / 'bench.db'}" if backend == "sqlite"
                           else pg.create_database(pg.unique_name("bbench")))
                    app = App(Settings.from_env({"DECLARATIONS_HOME": str(home),
                                                 "DECLARATIONS_DATABASE_URL": url}))
                    app.init()
                    directory.load(app.engine, world)
                    if args.dimona == "covered":
                        cover_with_dimona(app.engine, secretariat_employers(employers),
                                          employer_workers(args.workers_per_dmfa, employers))
                    app.close()
                    put_file(home / "inbox", f"bench-{size}", source)
                    print(f"processing {size} workers on {backend}...", file=sys.stderr)
                    command = [sys.executable, __file__, "--child", str(home), url]
                    if kept:
                        command.append("--child-kept")
                    postmaster = postmaster_pid(pg) if backend == "postgresql" else None
                    if postmaster:
                        command += ["--child-postmaster", str(postmaster)]
                    if args.profile:
                        Path(args.profile).mkdir(parents=True, exist_ok=True)
                        command += ["--child-profile",
                                    str(Path(args.profile) / f"{size}-{employers}-{backend}.prof")]
                    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
                    if batch_workers:
                        env["DECLARATIONS_BATCH_WORKERS"] = batch_workers
                    # The floor next to the run, before and after it (the host is shared: its speed
                    # drifts within minutes), the best of three: the ratio is never flattered by it.
                    floor_s = min(floor(source) for _ in range(2))
                    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
                    floor_s = min(floor_s, floor(source))
                    figures = json.loads(out.stdout.strip().splitlines()[-1])
                    nbytes = source.stat().st_size
                    used = figures["workers"] if nbytes >= figures["parallel_min_bytes"] else 1
                    processes = f"{used} kept" if kept else used  # ("1 kept": decided here, workers idle)
                    # Every process's CPU, the store's server included: spread perfectly over the machine's
                    # cores, the batch could take no less than this (the floor runs in one process).
                    server_cpu = figures["cpu_server"]
                    cpu = figures["cpu_self"] + figures["cpu_workers"] + server_cpu
                    cpu_bound = cpu / min(used, os.cpu_count() or 1) / floor_s
                    rows.append((size, employers, backend, processes, count, nbytes,
                                 figures["seconds"], floor_s, figures["rss_kib"], figures["counts"], cpu_bound))
                    print(f"  {size:,} workers, {employers} employer(s), {backend}, {processes} process(es): "
                          f"CPU per 1,000 workers: batch process {figures['cpu_self'] * 1e6 / size:.1f} ms, "
                          f"workers {figures['cpu_workers'] * 1e6 / size:.1f} ms, PostgreSQL "
                          f"{server_cpu * 1e6 / size:.1f} ms; all processes {cpu:.2f} s of CPU "
                          f"({cpu / figures['seconds']:.2f} cores busy on average)", file=sys.stderr)
                source.unlink()
    if pg is not None:
        pg.stop()
    print("| workers | employers | store | processes | DmfAs | file (MB) | batch s | workers/s | floor s "
          "| floor workers/s | ratio | CPU-bound ratio | peak RSS, all processes (MiB) | results |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for size, employers, backend, processes, count, nbytes, seconds, floor_s, rss, counts, cpu_bound in rows:
        print(f"| {size:,} | {employers} | {backend} | {processes} | {count} | {nbytes / 1e6:,.1f} | {seconds:,.1f} "
              f"| {size / seconds:,.0f} | {floor_s:,.2f} | {size / floor_s:,.0f} | {seconds / floor_s:.1f}x "
              f"| {cpu_bound:.1f}x | {rss / 1024:,.0f} | {counts} |")
    if args.repeat > 1:
        runs: dict[tuple, list[tuple[float, float, float]]] = {}
        for size, employers, backend, processes, count, nbytes, seconds, floor_s, rss, counts, cpu_bound in rows:
            runs.setdefault((size, employers, backend, processes), []).append(
                (seconds / floor_s, size / seconds, cpu_bound))
        print("\n| workers | employers | store | processes | runs | ratio: median (min-max) | workers/s: median "
              "| CPU-bound ratio: median |")
        print("|---:|---:|---|---:|---:|---|---:|---:|")
        for (size, employers, backend, processes), found in runs.items():
            ratios = [r for r, _, _ in found]
            print(f"| {size:,} | {employers} | {backend} | {processes} | {len(found)} "
                  f"| {statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f}) "
                  f"| {statistics.median(w for _, w, _ in found):,.0f} "
                  f"| {statistics.median(c for _, _, c in found):.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
