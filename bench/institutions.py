"""Benchmark of issue 5: Consult on a store of a million persons, and the cost of notifications.

    python bench/institutions.py                      # generate 1M persons, then all the measurements
    python bench/institutions.py --persons 100000     # smaller store, same measurements
    python bench/institutions.py --url URL --home DIR --reuse   # a store bench/bigstore.py already filled

Steps, in one run (the throwaway PostgreSQL of tests/pgserver.py unless
``--url``; it is in /dev/shm with fsync off: an upper bound for a durable
server):

1. **store**: bench/bigstore.py fills it (persons, Dimona periods, four
   quarters of DmfA, register entries: see its docstring) with COPY;
   time and size are reported.
2. **store check**: Consults of sample persons return exactly what
   bigstore.py generated for them; **plans**: one Consult of each data type
   through ``InstitutionDesk.handle`` with every statement it runs captured and
   replayed under ``EXPLAIN (ANALYZE, BUFFERS)``: which index each statement
   uses.
3. **desk, in-process**: ``InstitutionDesk.handle`` alone (no XML, no
   signatures, no HTTP), one request at a time: the floor of a Consult;
   **CPU split**: CPU per Consult of the WSGI application in-process and of
   its parts; **what if**: the same with no ``pool_pre_ping`` and the
   institution's certificate fingerprints cached (monkeypatched here, for
   the measurement only; skipped unless ``--skip`` is given without it:
   both were done since, in session 2-3, so it prices nothing left).
4. **Consult over HTTP**: the real ``declarations serve`` (gunicorn sync
   workers, default count) on that store, driven by an asyncio HTTP/1.1
   client in this process (bench/soap.py's). The requests are signed
   beforehand: ``ConsultRequest`` of ONEM (demo key, EC P-256), distinct
   MessageIds, random persons (all registered as UNEMPLOYED), DIMONA and
   DMFA alternately. Phases: saturation (closed loop, ``--connections``),
   then an open loop at ``--rate`` req/s for ``--seconds`` s, each request
   timed from its scheduled moment (no coordinated omission). Every answer
   must be HTTP 200 with a signed ``ConsultResult`` carrying data (an
   EmploymentPeriod or a Quarter), never a Refusal; a sample of answers has
   its signature verified against the engine's certificate.
5. **notifications**: signed DimonaIn (sender 1001, employer 123456749,
   persons of the store registered by ONEM, INAMI and ONVA) through
   ``Ingest.submit`` in-process, as bench/pipeline.py: declarations/s with no
   subscription, then with ONEM, INAMI and ONVA subscribed to DIMONA (three
   notifications per declaration), alternated twice; the same with DmfAs of
   ``--dmfa-workers`` workers (DMFA subscriptions, ~3 notifications per
   worker). The ratio is subscribed / unsubscribed throughput.

Prints Markdown to paste into bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import bigstore  # noqa: E402
from soap import Connection, machine, open_loop, percentile, summarize_stacks  # noqa: E402

NOW = "2025-11-15T10:00:00+01:00"
KEYS = REPO / "fixtures" / "demo" / "keys"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
D = dt.date
WINDOWS = {"DIMONA": (D(2024, 1, 1), D(2025, 11, 15)), "DMFA": (D(2024, 10, 1), D(2025, 9, 30))}
SUBSCRIBERS = ("ONEM", "INAMI", "ONVA")   # all three hold every even-numbered person of the store


PATH = "/soap/institutions"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def signer(name: str):
    from declarations.xmlio.signature import Signer
    return Signer.from_files(KEYS / f"{name}.key.pem", KEYS / f"{name}.cert.pem")


def app_for(home: Path, url: str):
    from declarations.bootstrap import App
    from declarations.settings import Settings
    return App(Settings.from_env({"DECLARATIONS_HOME": str(home), "DECLARATIONS_DATABASE_URL": url,
                                  "DECLARATIONS_NOW": NOW}))


# --- requests -----------------------------------------------------------------------------------------

def consults(count: int, tag: str, inss: list[str], seed: int):
    """Typed Consult requests of ONEM: random persons, DIMONA and DMFA alternately, distinct MessageIds."""
    from declarations.domain import institution_messages as m

    rng = random.Random(seed)
    out = []
    for n in range(count):
        data_type = "DIMONA" if n % 2 == 0 else "DMFA"
        start, end = WINDOWS[data_type]
        out.append(m.Consult(m.Caller("ONEM", f"bench-{tag}-{n}"), inss[rng.randrange(len(inss))], data_type,
                             start, end))
    return out


def envelopes(requests) -> list[bytes]:
    """Each request signed with ONEM's demo key, in the Consult wrapper of a SOAP envelope."""
    from lxml import etree

    from declarations import ns
    from declarations.xmlio import institution_xml

    onem = signer("onem")
    head = (b'<soapenv:Envelope xmlns:soapenv="' + SOAP_ENV.encode() + b'"><soapenv:Body>'
            b'<isv:Consult xmlns:isv="' + ns.INSTITUTION_SERVICE.encode() + b'">')
    tail = b"</isv:Consult></soapenv:Body></soapenv:Envelope>"
    return [head + etree.tostring(onem.sign(institution_xml.request_element(r))) + tail for r in requests]


def check(status: int, data: bytes, counts: collections.Counter) -> None:
    """A signed ConsultResult with data in it; anything else is counted by what it is."""
    if status != 200:
        counts[f"HTTP {status}"] += 1
    elif b"Refusal" in data:
        counts["Refusal"] += 1
    elif b"ConsultResult" not in data or b"SignatureValue" not in data:
        counts["other"] += 1
    elif b"EmploymentPeriod>" not in data and b"Quarter>" not in data:
        counts["ConsultResult, empty"] += 1
    else:
        counts["ConsultResult"] += 1


# --- CPU accounting: what a Consult costs in CPU, whatever else runs on the machine ------------------------

def tree_cpu(root: int) -> float:
    """User + system CPU seconds of a process and all its live descendants (/proc)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def postmaster(app) -> int:
    """The PostgreSQL server's main process (parent of our backend), if it runs on this machine."""
    from sqlalchemy import text
    with app.engine.connect() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with open(f"/proc/{backend}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


class Waits:
    """Samples pg_stat_activity every 20 ms (in a thread): what the store's client backends are doing."""

    def __init__(self, url: str):
        import threading

        self.url = bigstore._libpq(url)
        self.counts: collections.Counter = collections.Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self.stopping.is_set():
                for state, kind, event in connection.execute(
                        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE datname = "
                        "current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()"):
                    if state == "active" and kind == "Lock":
                        self.counts[f"waiting on a lock ({event})"] += 1
                    elif state == "active":
                        self.counts["executing" if kind is None else f"active, {kind}"] += 1
                    else:
                        self.counts[state or "?"] += 1
                time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def summary(self) -> str:
        total = sum(self.counts.values()) or 1
        return ", ".join(f"{name} {100 * n / total:.0f} %" for name, n in self.counts.most_common())


# --- load (bench/soap.py's client, with the Consult check) ---------------------------------------------

async def closed_loop(port: int, bodies, connections: int, seconds: float, warmup: float):
    it = iter(bodies)
    counts: collections.Counter = collections.Counter()
    latencies: list[float] = []
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + seconds
    samples: list[bytes] = []
    done = 0
    ran_out = 0.0

    async def run():
        nonlocal done
        connection = Connection(port, PATH)
        try:
            while time.perf_counter() < window_end:
                body = next(it, None)
                if body is None:  # faster than --expected: the phase ends early, the rate is over its real length
                    nonlocal ran_out
                    ran_out = ran_out or time.perf_counter()
                    break
                sent = time.perf_counter()
                status, data = await connection.post(body)
                done += 1
                now = time.perf_counter()
                if window_start <= now <= window_end:
                    latencies.append(now - sent)
                    check(status, data, counts)
                    if len(samples) < 10:
                        samples.append(data)
        finally:
            connection.close()

    await asyncio.gather(*(run() for _ in range(connections)))
    if ran_out:
        say(f"  ran out of signed requests after {ran_out - window_start:.1f} s of the window: raise --expected")
        seconds = max(ran_out - window_start, 1e-3)
    return len(latencies) / seconds, latencies, counts, samples, done


def verify_samples(samples: list[bytes], home: Path) -> str:
    """Check the engine's signature on answers taken from the run."""
    from cryptography import x509
    from lxml import etree

    from declarations import ns
    from declarations.xmlio.signature import fingerprint, verify

    engine = fingerprint(x509.load_pem_x509_certificate((home / "engine-cert.pem").read_bytes()))
    good = 0
    for data in samples:
        envelope = etree.fromstring(data)
        result = envelope.find(f".//{{{ns.INSTITUTION}}}ConsultResult")
        if result is not None and verify(result).fingerprint == engine:
            good += 1
    return f"{good}/{len(samples)} sampled answers verified against the engine certificate"


# --- profile (py-spy on every worker during a saturation run) -------------------------------------------

INTERESTING = [
    ("reading the request: body, envelope parse, wrapper XSD (edge.read_request)",
     "read_request (declarations/channels/soap/edge.py"),
    ("  of which XSD validation", "problems (declarations/xmlio/schemas.py"),
    ("request signature verification (institution_requests.answer -> verify)", "verify (declarations/xmlio/signature.py"),
    ("InstitutionDesk.handle (the decision, the reads, the access log, commit)",
     "handle (declarations/services/institutions.py"),
    ("  SQL: SQLAlchemy execute", "execute (sqlalchemy/engine/base.py"),
    ("  access log append", "append_log (declarations/store/institutions.py"),
    ("  commit", "commit (sqlalchemy/engine/base.py"),
    ("answer: write + sign (signed_answer)", "signed_answer (declarations/channels/soap/institutions.py"),
    ("worker idle (waiting for a request)", "wait (gunicorn/workers/sync.py"),
]


def profile(server, bodies, args) -> str:
    import shutil
    import subprocess

    if shutil.which("py-spy") is None:
        return "py-spy not installed: no profile"
    out = Path(tempfile.mkdtemp(prefix="institutions-profile-")) / "stacks.txt"
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.process.pid), "--subprocesses", "--format", "raw",
                            "--duration", str(args.profile_seconds), "--rate", "200", "--output", str(out),
                            "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    asyncio.run(closed_loop(server.port, bodies, args.connections, args.profile_seconds + 2, 0.5))
    spy.wait(timeout=120)
    if not out.exists():
        return "py-spy failed: " + spy.stderr.read().decode()[-500:]
    return summarize_stacks(out, INTERESTING, args.profile_seconds)


# --- plans ------------------------------------------------------------------------------------------

def plans(app, inss: list[str]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement one Consult of each data type runs, replayed in a
    transaction that is rolled back (a Consult's reads ride in statements that also write: the MessageId
    claim, the access-log append)."""
    from sqlalchemy import event

    from declarations.domain import institution_messages as m

    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE")):
            captured.append((statement, parameters))

    out = []
    for n, data_type in enumerate(("DIMONA", "DMFA")):
        start, end = WINDOWS[data_type]
        request = m.Consult(m.Caller("ONEM", f"bench-plan-{time.time_ns()}-{n}"), inss[len(inss) // 2 + n],
                            data_type, start, end)
        captured.clear()
        event.listen(app.engine, "before_cursor_execute", capture)
        try:
            answer = app.institutions.handle(request)
        finally:
            event.remove(app.engine, "before_cursor_execute", capture)
        out.append(f"#### Consult {data_type} ({type(answer).__name__}, {len(captured)} statements)")
        with app.engine.connect() as connection:
            driver = connection.connection.driver_connection
            for statement, parameters in captured:
                if isinstance(parameters, dict) and "message_id" in parameters:
                    # a MessageId of its own: the one replayed is claimed, and the claim gates the reads
                    parameters = dict(parameters, message_id=f"{parameters['message_id']}-explain")
                cursor = driver.cursor()
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
                plan = [row[0] for row in cursor.fetchall()]
                first = " ".join(statement.split())[:150]
                out.append(f"\n    -- {first}...")
                out += [f"    {line}" for line in plan]
            driver.rollback()  # the replayed claim and log append are not kept
    return "\n".join(out)


def expectations(app, inss: list[str], employers: int) -> str:
    """Consult a few persons through the desk and compare with what bigstore.py generated for them:
    the engine reads the generated rows as its own (current period cut to the window, four current DmfAs)."""
    from declarations.domain import institution_messages as m

    picked = [0, 1, 2, 3, 20, 21, len(inss) // 3]
    for i in picked:
        noss = bigstore.employer_numbers(i % employers)[0]
        tag = f"bench-expect-{time.time_ns()}-{i}"
        dimona = app.institutions.handle(m.Consult(m.Caller("ONEM", tag + "-d"), inss[i], "DIMONA", *WINDOWS["DIMONA"]))
        periods = [(p.employer_noss, p.start, p.end) for p in dimona.periods]
        # the ended (2018-2019) and the cancelled (2022) periods are out of the window or not current
        assert periods == [(noss, WINDOWS["DIMONA"][0], WINDOWS["DIMONA"][1])], (i, dimona)
        dmfa = app.institutions.handle(m.Consult(m.Caller("ONEM", tag + "-q"), inss[i], "DMFA", *WINDOWS["DMFA"]))
        quarters = [(q.employer_noss, q.year, q.quarter, len(q.occupations)) for q in dmfa.quarters]
        assert quarters == [(noss, y, q, 1) for y, q in bigstore.QUARTERS], (i, dmfa)
    return (f"persons {picked}: DIMONA and DMFA Consults return exactly what bigstore.py generated for them "
            f"(one current period cut to the window; the current DmfA of each of the four quarters)")


# --- desk in-process -----------------------------------------------------------------------------------

def round_trip(app, count: int = 500) -> float:
    """Seconds per ``SELECT 1`` through SQLAlchemy on one connection, now: the unit a Consult's statements cost."""
    from sqlalchemy import text

    with app.engine.connect() as connection:
        for _ in range(50):
            connection.execute(text("SELECT 1"))
        begin = time.perf_counter()
        for _ in range(count):
            connection.execute(text("SELECT 1"))
        return (time.perf_counter() - begin) / count


def desk_floor(app, inss: list[str], count: int) -> dict:
    requests = consults(count, f"desk-{time.time_ns()}", inss, seed=7)
    for r in requests[:20]:
        app.institutions.handle(r)  # warm-up: connections, caches
    latencies, kinds = [], collections.Counter()
    server = postmaster(app)
    pg_before, own_before = tree_cpu(server), time.process_time()
    begin = time.perf_counter()
    for r in requests[20:]:
        t = time.perf_counter()
        answer = app.institutions.handle(r)
        latencies.append(time.perf_counter() - t)
        kinds[type(answer).__name__ if not getattr(answer, "code", None) else answer.code] += 1
    seconds = time.perf_counter() - begin
    n = len(latencies)
    return dict(n=n, rate=n / seconds, p50=percentile(latencies, 0.5), p99=percentile(latencies, 0.99), kinds=kinds,
                cpu_python=(time.process_time() - own_before) / n, cpu_pg=(tree_cpu(server) - pg_before) / n)


# --- CPU split of one Consult, in-process -------------------------------------------------------------

def cpu_split(app, inss: list[str], count: int = 300) -> str:
    """CPU per Consult (this process, and PostgreSQL) of the whole WSGI application called in-process (no
    HTTP) and of its parts, each on its own fresh requests: where a Consult's CPU goes, load or not."""
    import io

    from declarations.channels.soap import edge
    from declarations.channels.soap import institutions as channel
    from declarations.channels.soap.wsgi import SoapApplication
    from declarations.xmlio import signature

    wsgi = SoapApplication(lambda: app)

    def environ(body: bytes) -> dict:
        return {"PATH_INFO": channel.DESCRIPTOR.path, "REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/xml; charset=utf-8",
                "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "SERVER_NAME": "bench",
                "SERVER_PORT": "80", "wsgi.url_scheme": "http", "HTTP_HOST": "bench"}

    def whole(body: bytes) -> None:
        status = []
        answer = b"".join(wsgi(environ(body), lambda s, h: status.append(s)))
        assert status[0].startswith("200") and b"ConsultResult" in answer, answer[:500]

    server = postmaster(app)
    lines = ["| part | Python CPU (ms) | PostgreSQL CPU (ms) |", "|---|---:|---:|"]

    def measure(label, fn, items):
        for item in items[:30]:
            fn(item)
        own, pg = time.process_time(), tree_cpu(server)
        for item in items[30:]:
            fn(item)
        n = len(items) - 30
        lines.append(f"| {label} | {1000 * (time.process_time() - own) / n:.2f} | "
                     f"{1000 * (tree_cpu(server) - pg) / n:.2f} |")

    tag = time.time_ns()
    bodies = envelopes(consults(count, f"split-w-{tag}", inss, seed=31))
    measure("whole WSGI application (envelope in, spyne dispatch, signed answer out)", whole, bodies)
    measure("InstitutionDesk.handle (typed request: decision, reads, access log)", app.institutions.handle,
            consults(count, f"split-d-{tag}", inss, seed=32))
    bodies = envelopes(consults(count, f"split-e-{tag}", inss, seed=33))
    measure("edge.read_request (envelope parse + wrapper XSD)",
            lambda body: edge.read_request(environ(body), 10 ** 7, channel.DESCRIPTOR), bodies)
    requests = [edge.read_request(environ(body), 10 ** 7, channel.DESCRIPTOR) for body in bodies]
    measure("signature verification of the request", lambda r: signature.verify(r.payload), requests)
    measure("certificate fingerprints of the institution, own checkout (no longer on a Consult's path: the "
            "desk checks the certificate in its first statement)",
            lambda r: app.institutions.institution_fingerprints("ONEM"), requests)
    answers = [app.institutions.handle(r) for r in consults(count, f"split-a-{tag}", inss, seed=34)]
    measure("writing and signing the answer (signed_answer)", lambda a: channel.signed_answer(app, a), answers)
    return "\n".join(lines)


# --- what if: two of the changes README proposes, tried on the running code without changing it -------------

def what_if(home: Path, url: str, inss: list[str], rounds: int = 3, count: int = 300) -> str:
    """CPU per Consult of the WSGI application in-process, as is against a variant with no
    ``pool_pre_ping`` and the institution's certificate fingerprints cached per process (what a cache keyed
    by the directory version would do between directory loads); rounds alternate, medians reported."""
    import io

    from sqlalchemy import create_engine

    from declarations.channels.soap import institutions as channel
    from declarations.channels.soap.wsgi import SoapApplication
    from declarations.services.institutions import InstitutionDesk

    def variant(changed: bool):
        app = app_for(home, url)
        if changed:
            app.__dict__["engine"] = create_engine(url, pool_size=5, max_overflow=10)  # make_engine's, no pre-ping
            cache: dict[str, tuple[str, ...]] = {}
            desk = app.institutions

            def fingerprints(institution_id: str) -> tuple[str, ...]:
                if institution_id not in cache:
                    cache[institution_id] = InstitutionDesk.institution_fingerprints(desk, institution_id)
                return cache[institution_id]

            desk.institution_fingerprints = fingerprints
        return app

    def environ(body: bytes) -> dict:
        return {"PATH_INFO": channel.DESCRIPTOR.path, "REQUEST_METHOD": "POST",
                "CONTENT_TYPE": "text/xml; charset=utf-8", "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body), "SERVER_NAME": "bench", "SERVER_PORT": "80",
                "wsgi.url_scheme": "http", "HTTP_HOST": "bench"}

    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for n in range(rounds):
        for changed in (False, True):
            app = variant(changed)
            wsgi = SoapApplication(lambda: app)
            bodies = envelopes(consults(count + 30, f"whatif-{time.time_ns()}", inss, seed=100 + n))
            for body in bodies[:30]:
                b"".join(wsgi(environ(body), lambda s, h: None))
            server = postmaster(app)
            own, pg = time.process_time(), tree_cpu(server)
            for body in bodies[30:]:
                answer = b"".join(wsgi(environ(body), lambda s, h: None))
                assert b"ConsultResult" in answer, answer[:500]
            results[changed].append(((time.process_time() - own) / count, (tree_cpu(server) - pg) / count))
            app.close()
    lines = ["| variant | Python CPU (ms) | PostgreSQL CPU (ms) | total (ms) |", "|---|---:|---:|---:|"]
    for changed, label in ((False, "as is"), (True, "no pool_pre_ping, fingerprints cached")):
        python = statistics.median(a for a, _ in results[changed])
        pg = statistics.median(c for _, c in results[changed])
        lines.append(f"| {label} | {1000 * python:.2f} | {1000 * pg:.2f} | {1000 * (python + pg):.2f} |")
    return "\n".join(lines)


# --- notifications -------------------------------------------------------------------------------------

def dimona_documents(persons: list[str], tag: str) -> list[bytes]:
    from declarations import samples
    s = signer("sender-1001")
    return [samples.to_bytes(s.sign(samples.dimona(
        "In", message_id=f"bench-notify-{tag}-{i}", sender_id="1001", noss="123456749", enterprise_nbr="0403179609",
        INSS=who, StartingDate=D(2025, 11, 16), JointCommissionNbr="302", WorkerType="OTH")))
        for i, who in enumerate(persons)]


def dmfa_documents(persons: list[str], quarters: list[str], tag: str) -> list[bytes]:
    from declarations import samples
    s = signer("sender-1001")
    out = []
    for i, quarter in enumerate(quarters):
        year, number = int(quarter[:4]), int(quarter[4])
        start = D(year, 3 * number - 2, 1)
        out.append(samples.to_bytes(s.sign(samples.dmfa(
            message_id=f"bench-notify-{tag}-{i}", sender_id="1001", noss="123456749", enterprise_nbr="0403179609",
            quarter=quarter, workers=[samples.worker(who, sequence=n + 1, occupations=[samples.occupation(
                start=start, jc="302", services=[("001", 6000)], remuns=[("001", 300000 + n)])])
                for n, who in enumerate(persons)]))))
    return out


def subscribe(app, data_type: str, on: bool) -> None:
    from declarations.domain import institution_messages as m
    for institution in SUBSCRIBERS:
        caller = m.Caller(institution, f"bench-sub-{time.time_ns()}")
        request = m.Subscribe(caller, data_type) if on else m.Unsubscribe(caller, data_type)
        answer = app.institutions.handle(request)
        assert not isinstance(answer, m.Refused), answer


def notification_count(app) -> int:
    from sqlalchemy import func, select

    from declarations.store import tables as t
    with app.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(t.notification)).scalar_one()


def notifications(app, inss: list[str], dimona_n: int, dmfa_n: int, dmfa_workers: int) -> list[dict]:
    """Alternating rounds: none, subscribed, none, subscribed (each on its own documents)."""
    from sqlalchemy import select

    from declarations.store import tables as t

    rows = []
    # Even-numbered persons are registered by ONEM, INAMI and ONVA. Those an earlier run already hired at the
    # bench employer, and the quarters it already declared, are left out: a rerun on the same store is accepted.
    with app.engine.connect() as connection:
        hired = set(connection.execute(select(t.employment_period.c.inss).where(
            t.employment_period.c.employer_noss == "123456749")).scalars())
        declared = {str(q) for q in connection.execute(select(t.dmfa.c.quarter).where(
            t.dmfa.c.employer_noss == "123456749")).scalars()}
    evens = [who for who in inss[-2::-2] if who not in hired]
    dimona_people = evens[:4 * dimona_n]
    dimona_sets = [dimona_documents(dimona_people[k * dimona_n:(k + 1) * dimona_n], f"d{k}-{time.time_ns()}")
                   for k in range(4)]
    quarters, year, q = [], 2025, 3
    while len(quarters) < 4 * dmfa_n:
        if f"{year}{q}" not in declared:
            quarters.append(f"{year}{q}")
        year, q = (year, q - 1) if q > 1 else (year - 1, 4)
    workers = evens[4 * dimona_n:4 * dimona_n + dmfa_workers]
    dmfa_sets = [dmfa_documents(workers, quarters[k * dmfa_n:(k + 1) * dmfa_n], f"m{k}-{time.time_ns()}")
                 for k in range(4)] if dmfa_n else []
    app.ingest.submit(dimona_documents(evens[-1:], f"warm-{time.time_ns()}")[0], channel="CLI")  # warm-up
    for label, data_type, sets in (("Dimona", "DIMONA", dimona_sets), (f"DmfA x{dmfa_workers}", "DMFA", dmfa_sets)):
        for k, documents in enumerate(sets):
            subscribed = k % 2 == 1
            subscribe(app, data_type, subscribed)
            before = notification_count(app)
            statuses = collections.Counter()
            begin = time.perf_counter()
            for data in documents:
                statuses[app.ingest.submit(data, channel="CLI").outcome.status] += 1
            seconds = time.perf_counter() - begin
            written = notification_count(app) - before
            rows.append(dict(label=label, round=k + 1, subscribed=subscribed, n=len(documents),
                             rate=len(documents) / seconds, notifications=written, statuses=statuses))
            say(f"  {label} round {k + 1} ({'3 subscribed' if subscribed else 'none'}): "
                f"{len(documents) / seconds:.1f}/s, {written} notifications, {dict(statuses)}")
        subscribe(app, data_type, False)
    return rows


# --- main ------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="PostgreSQL URL (default: a throwaway cluster)")
    parser.add_argument("--home", help="engine home (engine key); default: a temporary directory")
    parser.add_argument("--reuse", action="store_true", help="the store at --url is already generated")
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--employers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: serve's default)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--expected", type=float, default=800, help="a generous guess of Consults/s at saturation")
    parser.add_argument("--desk", type=int, default=1000, help="Consults for the in-process desk floor")
    parser.add_argument("--dimona", type=int, default=200, help="Dimona per notification round")
    parser.add_argument("--dmfa", type=int, default=2, help="DmfAs per notification round")
    parser.add_argument("--dmfa-workers", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="py-spy on the workers during a saturation run")
    parser.add_argument("--profile-seconds", type=int, default=8)
    parser.add_argument("--skip", default="whatif",
                        help="comma-separated: plans,desk,split,whatif,http,notify (default: whatif)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    from declarations import samples
    from declarations.channels.soap.harness import Server
    from declarations.channels.soap.server import default_workers
    from declarations.xmlio import keys

    pg = None
    url = args.url
    if url is None:
        import pgserver
        pg = pgserver.start_or_say()
        if pg is None:
            return 1
        url = pg.create_database("institutions")
    workers = args.workers or default_workers()
    out = [f"machine: {machine()}; gunicorn sync workers: {workers}"]
    tmp = tempfile.TemporaryDirectory(prefix="institutions-bench-")
    home = Path(args.home) if args.home else Path(tmp.name)
    try:
        if not args.reuse:
            say(f"generating {args.persons:,} persons ...")
            generated = bigstore.generate(url, persons=args.persons, employers=args.employers, home=home, say=say)
            out += ["", "### store", "", bigstore.report(generated)]
        keys.ensure_engine_key(home)
        inss = samples.inss_series(args.persons)

        app = app_for(home, url)
        out += ["", "store check: " + expectations(app, inss, args.employers)]
        if "plans" not in skip:
            say("plans ...")
            out += ["", "### plans (EXPLAIN ANALYZE, one Consult of each type)", "", plans(app, inss)]
        if "desk" not in skip:
            say("desk in-process ...")
            unit = round_trip(app)
            r = desk_floor(app, inss, args.desk)
            out += ["", "### InstitutionDesk.handle in-process (no XML, no signature, no HTTP; one at a time)", "",
                    f"{r['n']} Consults: {r['rate']:.1f}/s, p50 {1000 * r['p50']:.2f} ms, p99 {1000 * r['p99']:.2f} ms;"
                    f" answers {dict(r['kinds'])}; a `SELECT 1` round trip at the same time: {1000 * unit:.2f} ms "
                    f"(p50 Consult = {r['p50'] / unit:.1f} round trips); CPU per Consult: Python "
                    f"{1000 * r['cpu_python']:.2f} ms, PostgreSQL {1000 * r['cpu_pg']:.2f} ms"]
        if "split" not in skip:
            say("CPU split ...")
            try:
                out += ["", "### CPU per Consult, in-process, by part", "", cpu_split(app, inss)]
            except (ImportError, AttributeError) as error:  # the SOAP side moves: say so, measure the rest
                out += ["", f"CPU split unavailable: {error!r}"]
        app.close()
        if "whatif" not in skip:
            say("what if ...")
            try:
                out += ["", "### what if (WSGI application in-process, medians of 3 alternated rounds of 300 Consults)",
                        "", what_if(home, url, inss)]
            except (ImportError, AttributeError) as error:
                out += ["", f"what-if unavailable: {error!r}"]

        if "http" not in skip:
            saturation_n = int(args.expected * (args.seconds + args.warmup) * 1.3) + args.connections
            open_n = int(args.rate * args.seconds)
            profile_n = int(args.expected * (args.profile_seconds + 3)) if args.profile else 0
            say(f"signing {saturation_n + open_n + profile_n} Consult requests ...")
            t = time.perf_counter()
            bodies = envelopes(consults(saturation_n + open_n + profile_n, f"http-{time.time_ns()}", inss, seed=11))
            say(f"  signed in {time.perf_counter() - t:.1f} s; envelope {len(bodies[0])} bytes")
            app = app_for(home, url)
            pg_server = postmaster(app)
            app.close()
            with Server(home, now=NOW, database_url=url, workers=workers, prepare=False) as server:
                say("warm-up ...")  # every worker: imports, schemas, keys, connections; not measured
                warm = envelopes(consults(int(args.expected * 3) + 100, f"warm-{time.time_ns()}", inss, seed=17))
                asyncio.run(closed_loop(server.port, warm, args.connections, 3, 0))
                say("saturation ...")
                cpu_before = (tree_cpu(server.process.pid), tree_cpu(pg_server), time.process_time())
                with Waits(url) as waits:
                    sat, sat_lat, sat_counts, sample, done = asyncio.run(closed_loop(
                        server.port, bodies[:saturation_n], args.connections, args.seconds, args.warmup))
                cpu = [(after - before) / done for after, before in zip(
                    (tree_cpu(server.process.pid), tree_cpu(pg_server), time.process_time()), cpu_before)]
                say(f"  {sat:.1f}/s {dict(sat_counts)}; CPU ms per Consult: " + ", ".join(f"{1000 * c:.2f}" for c in cpu))
                seconds = args.seconds
                if sat < 0.8 * args.rate:  # overloaded: the queue only grows; a shorter run says as much
                    seconds = min(args.seconds, 5)
                    say(f"  saturation is below the target rate: the open loop at {args.rate}/s runs {seconds} s")
                say(f"open loop at {args.rate}/s ...")
                lat, counts, achieved, sizes = asyncio.run(open_loop(
                    server.port, PATH, bodies[saturation_n:saturation_n + open_n], args.rate, seconds, check))
                rows = [(f"open loop at {args.rate:g}/s, {seconds:g} s", achieved, lat, counts)]
                if sat < args.rate:
                    rate70 = round(0.7 * sat, 1)
                    n70 = int(rate70 * args.seconds)
                    extra = envelopes(consults(n70, f"http70-{time.time_ns()}", inss, seed=13))
                    say(f"open loop at 70 % of saturation, {rate70}/s ...")
                    lat70, counts70, achieved70, _ = asyncio.run(open_loop(server.port, PATH, extra, rate70, args.seconds,
                                                                              check))
                    rows.append((f"open loop at 70 % of saturation ({rate70:g}/s), {args.seconds:g} s", achieved70,
                                 lat70, counts70))
                profiled = None
                if args.profile:
                    say("profile ...")
                    profiled = profile(server, bodies[saturation_n + open_n:], args)
            out += ["", "### Consult over HTTP (declarations serve, PostgreSQL)", "",
                    "| phase | requests/s | p50 (ms) | p99 (ms) | p99.9 (ms) | answers |", "|---|---:|---:|---:|---:|---|",
                    f"| saturation, {args.connections} connections, closed loop | {sat:,.1f} | "
                    f"{1000 * percentile(sat_lat, 0.5):.1f} | {1000 * percentile(sat_lat, 0.99):.1f} | "
                    f"{1000 * percentile(sat_lat, 0.999):.1f} | {dict(sat_counts)} |",
                    *(f"| {name} | {rate:,.1f} | {1000 * percentile(values, 0.5):.1f} | "
                      f"{1000 * percentile(values, 0.99):.1f} | {1000 * percentile(values, 0.999):.1f} | "
                      f"{dict(answers)} |" for name, rate, values, answers in rows),
                    "", f"request envelope {len(bodies[0]):,} bytes; answer mean {statistics.mean(sizes):,.0f} bytes; "
                    + verify_samples(sample, home),
                    "", f"CPU per Consult at saturation ({done} requests): server workers {1000 * cpu[0]:.2f} ms, "
                    f"PostgreSQL {1000 * cpu[1]:.2f} ms, load generator {1000 * cpu[2]:.2f} ms; total "
                    f"{1000 * sum(cpu):.2f} ms, so {os.cpu_count()} CPUs alone would allow at most "
                    f"{os.cpu_count() / sum(cpu):,.0f} Consults/s",
                    "", "PostgreSQL backends at saturation (pg_stat_activity every 20 ms): " + waits.summary()]
            if profiled:
                out += ["", "### where the time goes (saturation)", "", profiled]

        if "notify" not in skip:
            say("notifications ...")
            app = app_for(home, url)
            rows = notifications(app, inss, args.dimona, args.dmfa, args.dmfa_workers)
            app.close()
            out += ["", "### notifications (Ingest.submit in-process, PostgreSQL)", "",
                    "| documents | round | subscribed | n | docs/s | notifications written | statuses |",
                    "|---|---:|---|---:|---:|---:|---|"]
            out += [f"| {r['label']} | {r['round']} | {'ONEM, INAMI, ONVA' if r['subscribed'] else 'none'} | {r['n']} "
                    f"| {r['rate']:,.1f} | {r['notifications']:,} | {dict(r['statuses'])} |" for r in rows]
            for label in dict.fromkeys(r["label"] for r in rows):
                none = [r for r in rows if r["label"] == label and not r["subscribed"]]
                subs = [r for r in rows if r["label"] == label and r["subscribed"]]
                rate_none = sum(r["n"] for r in none) / sum(r["n"] / r["rate"] for r in none)
                rate_subs = sum(r["n"] for r in subs) / sum(r["n"] / r["rate"] for r in subs)
                out.append(f"\n{label}: {rate_none:,.1f}/s with none, {rate_subs:,.1f}/s with 3 subscribed: "
                           f"ratio {rate_subs / rate_none:.2f}")
    finally:
        if pg is not None:
            pg.stop()
        tmp.cleanup()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
