"""``declarations batch put|run`` as real processes: kill -9 at any point and restart; two processes sharing
one PostgreSQL store and one inbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from declarations import ns, samples
from declarations.bootstrap import App
from declarations.services import directory
from declarations.settings import Settings
from declarations.store import tables as t
from declarations.xmlio import batch_xml, parsing

REPO = Path(__file__).resolve().parents[2]
NOW = "2025-11-15T10:00:00+01:00"
sys.path.insert(0, str(REPO / "bench"))
import batch as gen  # noqa: E402


def world(tmp_path: Path, engine_home: Path, url: str) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    for name in ("engine-key.pem", "engine-cert.pem"):
        shutil.copy(engine_home / name, home / name)
    env = {**os.environ, "DECLARATIONS_HOME": str(home), "DECLARATIONS_NOW": NOW, "DECLARATIONS_DATABASE_URL": url}
    env.pop("DECLARATIONS_BATCH_CRASH_AT", None)
    app = App(Settings.from_env(env))
    app.init()
    directory.load(app.engine, (REPO / "fixtures" / "demo" / "directory.xml").read_bytes())
    app.close()
    return env


def cli(env: dict, *args: str, extra: dict | None = None, wait: bool = True):
    command = [sys.executable, "-m", "declarations.channels.cli", *args]
    environment = {**env, **(extra or {})}
    if not wait:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, env=environment, capture_output=True, timeout=120)


def count(env: dict, table) -> int:
    app = App(Settings.from_env(env))
    try:
        with app.engine.connect() as c:
            return c.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        app.close()


@pytest.fixture(scope="module")
def items():
    signer = gen.signer_2001()
    signed = gen.dimona_items(signer, 6, prefix="crash", bad=[1])
    # An unsigned item (S001) reserves no message key: only the batch's own bookkeeping keeps it single.
    signed[3] = samples.dimona("In", message_id="crash-unsigned", sender_id="2001", noss="555123433",
                               INSS=samples.inss_series(9)[8], StartingDate=samples.dt.date(2025, 11, 15),
                               JointCommissionNbr="302", WorkerType="OTH")
    return signed


@pytest.mark.parametrize("point", ["claimed", "acked", "item:1", "item:4", "done", "result"])
def test_killed_at_any_point_the_batch_is_finished_once_on_restart(tmp_path, engine_home, items, point):
    env = world(tmp_path, engine_home, f"sqlite:///{tmp_path / 'store.db'}")
    source = tmp_path / "q4.xml"
    source.write_bytes(gen.batch_bytes(batch_id="B-crash", items=items))
    assert cli(env, "batch", "put", str(source)).returncode == 0
    killed = cli(env, "batch", "run", extra={"DECLARATIONS_BATCH_CRASH_AT": point})
    assert killed.returncode == -9, killed.stderr
    home = Path(env["DECLARATIONS_HOME"])
    spools = lambda: list((home / "archive").glob(".*.spool"))  # noqa: E731 -- the first pass's copy of the items
    # Written by the first pass, removed once the second is over: a kill in between leaves it behind.
    assert bool(spools()) == (point in ("acked", "item:1", "item:4"))
    again = cli(env, "batch", "run")
    assert again.returncode == 0, again.stderr
    assert spools() == []  # the dead owner's spool removed by the next one
    assert count(env, t.declaration) == 6 and count(env, t.batch_item) == 6
    result = batch_xml.read_answer(parsing.parse((home / "outbox" / "q4.result.xml").read_bytes()))
    assert [r.findtext(f"{{{ns.RESULT}}}MessageId") for r in result["results"]] == \
        ["crash-0", "crash-1", "crash-2", "crash-unsigned", "crash-4", "crash-5"]
    assert (result["accepted"], result["refused"]) == (4, 2)
    assert (home / "outbox" / "q4.ack.xml").exists() and list((home / "inbox").iterdir()) == []
    assert not [p for p in (home / "outbox").iterdir() if p.name.startswith(".")]  # no half-written file left


def survivors(home: str, wait: float = 5.0) -> list[int]:
    """Processes still running with this DECLARATIONS_HOME in their environment, after up to ``wait`` s."""
    marker = f"DECLARATIONS_HOME={home}".encode()
    deadline = time.monotonic() + wait
    while True:
        found = []
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open(f"/proc/{pid}/environ", "rb") as environ:
                    if marker in environ.read().split(b"\0"):
                        found.append(int(pid))
            except OSError:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.parametrize("point", ["item:2", "item:7", "worker-item:3"])
def test_killed_with_worker_processes_the_batch_is_finished_once_on_restart(tmp_path, engine_home, items, point):
    """Items decided on two worker processes commit out of file order; the batch process killed (its
    workers die with it), or one worker killed, then a restart: each item stored once."""
    env = world(tmp_path, engine_home, f"sqlite:///{tmp_path / 'store.db'}")
    env.update(DECLARATIONS_BATCH_WORKERS="2", DECLARATIONS_BATCH_PARALLEL_MIN_BYTES="0")
    other = [gen.signer_2001().sign(samples.dimona(
        "In", message_id=f"crash-b{n}", sender_id="2001", noss="009988768", INSS=inss,
        StartingDate=samples.dt.date(2025, 11, 15), JointCommissionNbr="302", WorkerType="OTH"))
        for n, inss in enumerate(samples.inss_series(12)[9:])]
    mixed = [items[0], other[0], items[1], other[1], items[2], items[3], other[2], items[4], items[5]]
    source = tmp_path / "q4.xml"
    source.write_bytes(gen.batch_bytes(batch_id="B-crash", items=mixed))
    assert cli(env, "batch", "put", str(source)).returncode == 0
    killed = cli(env, "batch", "run", extra={"DECLARATIONS_BATCH_CRASH_AT": point})
    if point.startswith("worker"):  # the batch process lives on and says so
        assert killed.returncode == 1 and b"q4.xml: interrupted (a worker process died" in killed.stderr, killed.stderr
    else:
        assert killed.returncode == -9, killed.stderr
    assert survivors(env["DECLARATIONS_HOME"]) == []  # no worker outlives the batch process (PR_SET_PDEATHSIG)
    again = cli(env, "batch", "run")
    assert again.returncode == 0, again.stderr
    assert count(env, t.declaration) == 9 and count(env, t.batch_item) == 9
    home = Path(env["DECLARATIONS_HOME"])
    assert list((home / "archive").glob(".*.spool")) == []
    result = batch_xml.read_answer(parsing.parse((home / "outbox" / "q4.result.xml").read_bytes()))
    assert [r.findtext(f"{{{ns.RESULT}}}MessageId") for r in result["results"]] == \
        ["crash-0", "crash-b0", "crash-1", "crash-b1", "crash-2", "crash-unsigned", "crash-b2", "crash-4", "crash-5"]
    assert (result["accepted"], result["refused"]) == (7, 2)


@pytest.mark.postgres
def test_two_processes_share_the_inbox_each_file_taken_once(tmp_path, engine_home, postgres_server, items):
    url = postgres_server.create_database(postgres_server.unique_name("batch2p"))
    env = world(tmp_path, engine_home, url)
    signer = gen.signer_2001()
    for b in range(6):
        source = tmp_path / f"lot{b}.xml"
        source.write_bytes(gen.batch_bytes(batch_id=f"B-lot{b}",
                                           items=gen.dimona_items(signer, 3, prefix=f"lot{b}")[:3]))
        assert cli(env, "batch", "put", str(source)).returncode == 0
    runs = [cli(env, "batch", "run", wait=False) for _ in range(2)]
    outputs = [r.communicate(timeout=120) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    taken = [json.loads(line)["file"] for _out, err in outputs for line in err.decode().splitlines()
             if line.startswith("{") and json.loads(line)["event"] == "batch.taken"]
    assert sorted(taken) == [f"lot{b}.xml" for b in range(6)]  # each file taken by exactly one process
    assert count(env, t.batch_item) == 18 and count(env, t.declaration) == 18
    home = Path(env["DECLARATIONS_HOME"])
    assert sorted(p.name for p in (home / "outbox").iterdir()) == sorted(
        [f"lot{b}.ack.xml" for b in range(6)] + [f"lot{b}.result.xml" for b in range(6)])
    postgres_server.drop_database(url.rsplit("/", 1)[1])


def test_batch_put_refuses_a_name_that_is_not_a_batch_name(tmp_path, engine_home):
    env = world(tmp_path, engine_home, f"sqlite:///{tmp_path / 'store.db'}")
    bad = tmp_path / "a..b.xml"
    bad.write_bytes(b"<x/>")
    result = cli(env, "batch", "put", str(bad))
    assert result.returncode == 2 and b".." in result.stderr
    assert cli(env, "batch", "run").returncode == 0  # nothing in the inbox
