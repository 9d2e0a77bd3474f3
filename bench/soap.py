"""Benchmark of the real-time channel: ``declarations serve`` under load, against a bare spyne echo.

    python bench/soap.py                  # --backends sqlite,postgresql --workers 5 --connections 16
    python bench/soap.py --profile        # also py-spy (if installed) on the workers at saturation

For each backend it starts the real server (gunicorn, ``declarations serve``,
clock fixed at 2025-11-15, demo directory; PostgreSQL is the throwaway
cluster of tests/pgserver.py) and drives it from this process, a second
process, with an asyncio HTTP/1.1 keep-alive client (no client library in
the way), posting signed DimonaIn declarations (demo key of sender 1001,
RSA-2048; distinct MessageIds and workers, so each one is accepted and
stored):

- **saturation**: a closed loop of ``--connections`` connections for
  ``--seconds`` seconds (after a warm-up): declarations/s;
- **latency at 70 %**: an open loop at 70 % of that rate (requests sent on
  a fixed schedule, latency measured from the scheduled moment, so a stall
  is not hidden by the client waiting): p50 / p99 / p99.9;
- **echo**: the same two phases against a bare spyne 2.14 echo service
  (Soap11 in and out, lxml validator, same gunicorn settings), whose request
  envelope has the size of the Dimona envelope: the ratio is the cost of the
  pipeline over SOAP plumbing.

First, in process: the channel's own CPU per request (the edge, then the
edge + spyne's dispatch, on the same envelope, with an operation that
answers at once); ``--channel-only`` stops there.

Prints a Markdown table (and the py-spy summary) to paste into bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import functools
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

NOW = "2025-11-15T10:00:00+01:00"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


# --- the bare echo service (run by gunicorn: ``soap:echo_application()`` with --pythonpath bench) -------------

def echo_application():
    from spyne import Application, ServiceBase, Unicode, rpc
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication

    class EchoService(ServiceBase):
        @rpc(Unicode, _returns=Unicode)
        def Echo(ctx, text):  # noqa: N802,N805 - spyne's style
            return text

    return WsgiApplication(Application([EchoService], tns="urn:bench:echo", in_protocol=Soap11(validator="lxml"),
                                       out_protocol=Soap11()))


def echo_envelope(size: int) -> bytes:
    head = (b'<soapenv:Envelope xmlns:soapenv="' + SOAP.encode() + b'" xmlns:e="urn:bench:echo">'
            b"<soapenv:Body><e:Echo><e:text>")
    tail = b"</e:text></e:Echo></soapenv:Body></soapenv:Envelope>"
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


class EchoServer:
    def __init__(self, workers: int):
        from declarations.channels.soap.harness import free_port

        self.port = free_port()
        self.workers = workers
        self.process = None

    def __enter__(self):
        import urllib.request

        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--pythonpath", str(REPO / "bench"), "--workers", str(self.workers),
             "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning", "--no-control-socket",
             "soap:echo_application()"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/?wsdl", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the echo server did not start: " + self.process.stderr.read().decode()[-2000:])

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


# --- documents ----------------------------------------------------------------------------------------

# (sender, employer, key): the demo directory's senders and employers they may declare for. Each employer has
# its own advisory lock (declarations of one employer are serialised, by design); 1001 signs with RSA-2048,
# 2001 with EC P-256.
EMPLOYERS = [("1001", "123456749", "sender-1001"), ("2001", "555123433", "sender-2001"),
             ("2001", "009988768", "sender-2001")]


def dimona_envelopes(count: int, tag: str, employers: int = 1) -> list[bytes]:
    """Signed SubmitDimona envelopes (distinct MessageIds and workers), round-robin over ``employers``."""
    from lxml import etree

    from declarations import samples
    from declarations.xmlio.signature import Signer

    keys = REPO / "fixtures" / "demo" / "keys"
    signers = {key: Signer.from_files(keys / f"{key}.key.pem", keys / f"{key}.cert.pem")
               for _sender, _noss, key in EMPLOYERS[:employers]}
    out = []
    for n, inss in enumerate(samples.inss_series(count)):
        sender, noss, key = EMPLOYERS[n % employers]
        element = samples.dimona("In", message_id=f"bench-{tag}-{n}", sender_id=sender, noss=noss,
                                 INSS=inss, StartingDate=dt.date(2025, 11, 16), JointCommissionNbr="200",
                                 WorkerType="OTH")
        out.append(b'<soapenv:Envelope xmlns:soapenv="' + SOAP.encode() + b'"><soapenv:Body>'
                   b'<svc:SubmitDimona xmlns:svc="urn:declarations:service:v1">'
                   + etree.tostring(signers[key].sign(element))
                   + b"</svc:SubmitDimona></soapenv:Body></soapenv:Envelope>")
    return out


# --- the client -----------------------------------------------------------------------------------------

class Connection:
    def __init__(self, port: int, path: str):
        self.port, self.path = port, path
        self.reader = self.writer = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None
        if not reused:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: text/xml; "
                          f"charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        try:
            await self.writer.drain()
            status_line = await self.reader.readline()
        except ConnectionError:
            status_line = b""
        if not status_line and reused:
            # the server closed this kept-alive connection while it sat idle (keep-alive timeout) before reading
            # the request: what every keep-alive client does, open a new one and send it again
            self.close()
            self.reader = self.writer = None
            return await self.post(body)
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.reader = self.writer = None
        return int(status_line.split()[1]), data

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _check(status: int, data: bytes, counts: collections.Counter, dimona: bool) -> None:
    if status != 200:
        counts[f"HTTP {status}"] += 1
    elif dimona:
        counts["ACCEPTED" if b"<Status>ACCEPTED</Status>" in data else "other"] += 1
    else:
        counts["ok"] += 1


async def closed_loop(port: int, path: str, bodies, connections: int, seconds: float, warmup: float,
                      dimona: bool) -> tuple[float, collections.Counter]:
    it = iter(bodies)
    counts: collections.Counter = collections.Counter()
    done_in_window = 0
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + seconds

    async def run():
        nonlocal done_in_window
        connection = Connection(port, path)
        try:
            while time.perf_counter() < window_end:
                body = next(it, None)
                if body is None:
                    raise RuntimeError("not enough documents for the saturation phase: raise --expected")
                status, data = await connection.post(body)
                now = time.perf_counter()
                if window_start <= now <= window_end:
                    done_in_window += 1
                    _check(status, data, counts, dimona)
        finally:
            connection.close()

    await asyncio.gather(*(run() for _ in range(connections)))
    return done_in_window / seconds, counts


async def open_loop(port: int, path: str, bodies, rate: float, seconds: float,
                    check: Callable[[int, bytes, collections.Counter], None]
                    ) -> tuple[list[float], collections.Counter, float, list[int]]:
    """Each of ``rate * seconds`` bodies posted at its scheduled moment and timed from it (no coordinated
    omission); ``check`` counts each answer. Returns the latencies, the counts, the rate achieved and the
    answers' sizes."""
    total = int(rate * seconds)
    if len(bodies) < total:
        raise RuntimeError("not enough documents for the open loop: raise --expected")
    bodies = bodies[:total]
    counts: collections.Counter = collections.Counter()
    latencies: list[float] = []
    sizes: list[int] = []
    idle: list[Connection] = []
    t0 = time.perf_counter() + 0.2

    async def one(i: int, body: bytes):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        connection = idle.pop() if idle else Connection(port, path)
        status, data = await connection.post(body)
        latencies.append(time.perf_counter() - scheduled)
        idle.append(connection)
        sizes.append(len(data))
        check(status, data, counts)

    await asyncio.gather(*(one(i, body) for i, body in enumerate(bodies)))
    achieved = total / (time.perf_counter() - t0)
    for connection in idle:
        connection.close()
    return latencies, counts, achieved, sizes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(port: int, path: str, bodies: list[bytes], args, dimona: bool) -> dict:
    saturation, counts = asyncio.run(closed_loop(port, path, bodies, args.connections, args.seconds, args.warmup,
                                                 dimona))
    used = int(saturation * (args.seconds + args.warmup) * 1.2) + args.connections
    rate = 0.7 * saturation
    latencies, counts70, achieved, _ = asyncio.run(open_loop(port, path, bodies[used:], rate, args.seconds,
                                                             functools.partial(_check, dimona=dimona)))
    return dict(saturation=saturation, counts=counts, rate=rate, achieved=achieved, counts70=counts70,
                p50=percentile(latencies, 0.5), p99=percentile(latencies, 0.99),
                p999=percentile(latencies, 0.999), n70=len(latencies))


# --- the channel's own cost, in process ------------------------------------------------------------------

def channel_cost(repeat: int = 5, number: int = 2000) -> str:
    """CPU per request of the edge alone and of the edge + spyne's dispatch, on a SubmitDimona envelope,
    with an operation that answers at once (no pipeline): the best of ``repeat`` runs, so other load on
    the machine inflates it as little as possible."""
    import dataclasses
    import io

    from declarations.channels.soap import edge
    from declarations.channels.soap.declaration_service import DESCRIPTOR
    from declarations.channels.soap.descriptor import Answer, envelope
    from declarations.channels.soap.dispatch import EngineService, SpyneService, operation

    body = dimona_envelopes(1, "channel")[0]
    answer = Answer(b"<r:DeclarationResult xmlns:r='urn:declarations:result:v1'>" + b"x" * 2000
                    + b"</r:DeclarationResult>", "ACCEPTED")

    class AtOnce(EngineService):
        @operation
        def SubmitDimona(ctx, declaration):  # noqa: N802,N805
            return answer

    service = SpyneService(dataclasses.replace(DESCRIPTOR, spyne_service=AtOnce))

    def read():
        return edge.read_request({"CONTENT_TYPE": "text/xml", "CONTENT_LENGTH": str(len(body)),
                                  "wsgi.input": io.BytesIO(body)}, 5 << 20, service.descriptor)

    def edge_only():
        read()
        envelope(DESCRIPTOR.namespace, "SubmitDimonaResponse", answer.inner)

    def edge_and_spyne():
        service.dispatch(None, read().envelope)

    def best(function) -> float:
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(number):
                function()
            runs.append((time.perf_counter() - started) / number)
        return min(runs) * 1e6

    alone, with_spyne = best(edge_only), best(edge_and_spyne)
    return (f"channel, in process ({len(body):,}-byte SubmitDimona, operation answering at once, best of {repeat}"
            f" x {number}): edge {alone:.0f} us, edge + spyne {with_spyne:.0f} us per request "
            f"(spyne: {with_spyne - alone:.0f} us)")


# --- profiling --------------------------------------------------------------------------------------------

INTERESTING = [
    ("HTTP + envelope parse (edge.read_request)", "read_request (declarations/channels/soap/edge.py"),
    ("spyne dispatch (dispatch.SpyneService.dispatch, pipeline included)",
     "dispatch (declarations/channels/soap/dispatch.py"),
    ("Ingest.submit (whole pipeline)", "submit (declarations/services/ingest.py"),
    ("  signature verification (declaration)", "verify (declarations/xmlio/signature.py"),
    ("  receipt signing (engine key)", "sign (declarations/xmlio/signature.py"),
    ("  XSD validation", "problems (declarations/xmlio/schemas.py"),
    ("  SQL: SQLAlchemy execute", "execute (sqlalchemy/engine/base.py"),
    ("  commit", "commit (sqlalchemy/engine/base.py"),
    ("worker idle (waiting for a request)", "wait (gunicorn/workers/sync.py"),
]


def profile(server, args, employers: int = 1) -> str:
    import shutil

    if shutil.which("py-spy") is None:
        return "py-spy not installed: no profile"
    out = Path(tempfile.mkdtemp(prefix="soap-profile-")) / "stacks.txt"
    bodies = dimona_envelopes(int(args.expected * (args.profile_seconds + 6)) + 500, f"profile-{server.port}",
                              employers)
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.process.pid), "--subprocesses", "--format", "raw",
                            "--duration", str(args.profile_seconds), "--rate", "200", "--output", str(out),
                            "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    asyncio.run(closed_loop(server.port, "/soap/declarations", bodies, args.connections, args.profile_seconds + 2,
                            0.5, True))
    spy.wait(timeout=60)
    if not out.exists():
        return "py-spy failed: " + spy.stderr.read().decode()[-500:]
    return summarize_stacks(out, INTERESTING, args.profile_seconds)


def summarize_stacks(path: Path, interesting, seconds: float) -> str:
    """py-spy's raw stacks (``--format raw``) as the share of samples under each ``(label, needle)`` of
    ``interesting`` (a frame containing the needle anywhere in the stack) and the top frames by own samples."""
    total = 0
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        total += count
        frames = stack.split(";")
        for label, needle in interesting:
            if any(needle in f for f in frames):
                inclusive[label] += count
        if frames:
            own[frames[-1][:110]] += count
    lines = [f"py-spy, {total} samples over {seconds} s, all workers (share of samples):"]
    lines += [f"- {label}: {100 * inclusive[label] / max(total, 1):.1f} %" for label, _ in interesting]
    lines.append("top frames (self):")
    lines += [f"- {100 * c / max(total, 1):.1f} % {frame}" for frame, c in own.most_common(12)]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------------

def machine() -> str:
    import lxml.etree
    import sqlalchemy

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPU ({cpu}); Python {platform.python_version()}, lxml "
            f"{'.'.join(map(str, lxml.etree.LXML_VERSION[:3]))}, SQLAlchemy {sqlalchemy.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: serve's default)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--expected", type=float, default=700, help="a generous guess of declarations/s, "
                        "to sign enough documents beforehand")
    parser.add_argument("--employers", default="1,3", help="comma-separated: run the Dimona load spread over 1, "
                        "2 or 3 employers (one employer's declarations queue on its lock; real traffic is spread)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-seconds", type=int, default=8)
    parser.add_argument("--channel-only", action="store_true", help="only the channel's own cost, in process")
    args = parser.parse_args()

    print(channel_cost(), flush=True)
    if args.channel_only:
        return 0

    from declarations.channels.soap.harness import Server
    from declarations.channels.soap.server import default_workers

    workers = args.workers or default_workers()
    print(f"machine: {machine()}; gunicorn sync workers: {workers}; client: asyncio, "
          f"{args.connections} connections, same machine", flush=True)
    count = int(args.expected * (args.seconds + args.warmup) * 1.2 + args.expected * 0.7 * args.seconds) + 500
    rows, notes = [], []

    size = None
    for backend in args.backends.split(","):
        pg = None
        if backend == "postgresql":
            import pgserver
            pg = pgserver.start_postgres()
            if pg is None:
                print(f"postgresql: {pgserver.last_error}; skipped")
                continue
        try:
            for employers in [int(n) for n in args.employers.split(",")]:
                label = f"{backend}, {employers} employer{'s' if employers > 1 else ''}"
                print(f"[{label}] signing {count} Dimona ...", flush=True)
                bodies = dimona_envelopes(count, f"{backend}-{employers}", employers)
                size = len(bodies[0])
                database = pg.create_database(f"bench_soap_{employers}") if pg is not None else None
                with tempfile.TemporaryDirectory(prefix=f"soap-bench-{backend}-") as home, \
                        Server(Path(home), now=NOW, database_url=database, workers=workers) as server:
                    print(f"[{label}] measuring ...", flush=True)
                    result = measure(server.port, "/soap/declarations", bodies, args, True)
                    rows.append((f"Dimona, {label}", size, result))
                    if args.profile:
                        notes.append(f"[{label}] " + profile(server, args, employers))
        finally:
            if pg is not None:
                pg.stop()

    with EchoServer(workers) as echo:
        print("[echo] measuring ...", flush=True)
        body = echo_envelope(size or 4000)
        echo_count = int(8000 * (args.seconds + args.warmup) * 1.2 + 8000 * 0.7 * args.seconds)
        result = measure(echo.port, "/", [body] * echo_count, args, False)
        rows.append(("spyne echo (bare)", len(body), result))

    echo_rate = rows[-1][2]["saturation"]
    print("\n| service | envelope (bytes) | at saturation (req/s) | ratio to echo | 70 % rate (req/s) | "
          "p50 (ms) | p99 (ms) | p99.9 (ms) | answers |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, size_, r in rows:
        answers = ", ".join(f"{k} {v}" for k, v in sorted((r["counts"] + r["counts70"]).items()))
        print(f"| {name} | {size_:,} | {r['saturation']:,.1f} | {r['saturation'] / echo_rate:.3f} | "
              f"{r['achieved']:,.1f} | {1000 * r['p50']:.1f} | {1000 * r['p99']:.1f} | {1000 * r['p999']:.1f} | "
              f"{answers} |")
    for note in notes:
        print("\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
