"""CPU per SubmitDimona over HTTP: all of ``declarations serve``'s processes and PostgreSQL's, at saturation.

    python bench/soap_cpu.py            # --seconds 6 --workers 5 --connections 16 --repeat 2 --employers 1

On a shared machine the throughput of bench/soap.py moves with the other
users' load; the CPU a declaration costs hardly does. This drives the real
server (the harness and the client of bench/soap.py: signed DimonaIn of
sender 1001, all distinct and accepted, PostgreSQL from tests/pgserver.py)
in a closed loop and reads, from /proc, the CPU time (user + system) used
meanwhile by the server's process tree (arbiter and gunicorn workers) and by
the PostgreSQL cluster's processes, divided by the declarations answered.
The client's own CPU is reported apart. ``2 cores / (server + PostgreSQL
CPU per declaration)`` is the rate the machine could sustain if nothing else
ran on it (the client included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import soap as bench  # noqa: E402

def _processes() -> dict[int, tuple[int, float, bytes]]:
    """pid -> (parent pid, CPU seconds so far, command line)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            command = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        found[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, command)
    return found


def cpu_seconds(root: int, marker: bytes | None) -> float:
    """CPU used so far by ``root`` and its descendants, plus every process whose command line holds ``marker``
    (the PostgreSQL cluster's directory: the postmaster; its backends are its children)."""
    processes = _processes()
    roots = {pid for pid, (_parent, _cpu, command) in processes.items() if marker and marker in command}
    roots.add(root)
    total = 0.0
    for pid, (_parent, cpu, _command) in processes.items():
        ancestor = pid
        while ancestor in processes and ancestor not in roots:
            ancestor = processes[ancestor][0]
        if ancestor in roots:
            total += cpu
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: serve's default)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--expected", type=float, default=400, help="a generous guess of declarations/s")
    parser.add_argument("--employers", type=int, default=1, choices=(1, 2, 3),
                        help="spread the Dimona over this many employers (their advisory locks are distinct; "
                             "1001 signs with RSA-2048, 2001 with EC P-256)")
    args = parser.parse_args()

    import pgserver
    from declarations.channels.soap.harness import Server
    from declarations.channels.soap.server import default_workers

    workers = args.workers or default_workers()
    pg = pgserver.start_postgres()
    if pg is None:
        print(f"no PostgreSQL: {pgserver.last_error}", file=sys.stderr)
        return 1
    rows = []
    try:
        url = pg.create_database("bench_soap_cpu")
        warm = int(args.expected * 1.5 * 1.3) + 100  # the warm-up loop runs 1.5 s
        bodies = bench.dimona_envelopes(warm + int(args.expected * args.seconds * args.repeat * 1.3), "cpu",
                                  args.employers)
        marker = str(pg.tmpdir).encode() if getattr(pg, "tmpdir", None) else None
        with tempfile.TemporaryDirectory(prefix="soap-cpu-") as home, \
                Server(Path(home), now=bench.NOW, database_url=url, workers=workers) as server:
            asyncio.run(bench.closed_loop(server.port, "/soap/declarations", bodies[:warm], 8, 1.0, 0.5, True))
            rest = bodies[warm:]
            for _ in range(args.repeat):
                engine_cpu, pg_cpu = cpu_seconds(server.process.pid, None), cpu_seconds(-1, marker)
                client_cpu = time.process_time()
                rate, counts = asyncio.run(bench.closed_loop(server.port, "/soap/declarations", rest,
                                                             args.connections, args.seconds, 0.0, True))
                answered = rate * args.seconds
                engine_ms = (cpu_seconds(server.process.pid, None) - engine_cpu) / answered * 1000
                pg_ms = (cpu_seconds(-1, marker) - pg_cpu) / answered * 1000
                client_ms = (time.process_time() - client_cpu) / answered * 1000
                rows.append((rate, engine_ms, pg_ms, client_ms, dict(counts), os.getloadavg()[0]))
                rest = rest[int(answered * 1.2) + args.connections:]
    finally:
        pg.stop()
    print(f"gunicorn sync workers: {workers}; {args.connections} connections; "
          f"{os.cpu_count()} CPUs; "
          f"{args.employers} employer(s)")
    print("| run | Dimona/s at saturation | server + PostgreSQL CPU ms per Dimona (server, PostgreSQL) "
          "| client CPU ms per Dimona | 2 cores / server CPU (Dimona/s) | answers | load average |")
    print("|---:|---:|---:|---:|---:|---|---:|")
    for i, (rate, engine_ms, pg_ms, client_ms, counts, load) in enumerate(rows, 1):
        answers = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        server_ms = engine_ms + pg_ms
        print(f"| {i} | {rate:,.1f} | {server_ms:.2f} ({engine_ms:.2f}, {pg_ms:.2f}) | {client_ms:.2f} "
              f"| {2000 / server_ms:,.0f} | {answers} | {load:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
