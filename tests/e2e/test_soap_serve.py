"""``declarations serve``'s hook for background tasks (the batch inbox watcher will use it)."""

from __future__ import annotations

import os
import time

from declarations.channels.soap import server

TICKER = '''
import os
from pathlib import Path

def run(settings, stop):
    out = Path(os.environ["TICK_FILE"])
    n = 0
    while not stop.wait(0.05):
        n += 1
        out.write_text(f"tick {n} {settings.home}")
    out.write_text(f"stopped after {n}")
'''


def test_a_background_task_runs_in_its_own_process_until_serve_stops(tmp_path, monkeypatch):
    (tmp_path / "soap_ticker.py").write_text(TICKER)
    out = tmp_path / "ticks.txt"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TICK_FILE", str(out))
    monkeypatch.setenv("DECLARATIONS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(server, "BACKGROUND_TASKS", [])
    server.register_background_task("ticker", "soap_ticker:run")
    background = server._Background()
    background.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (out.exists() and out.read_text().startswith("tick 3")):
            time.sleep(0.05)
        assert out.read_text().startswith("tick"), "the task did not run"
        assert str(tmp_path / "home") in out.read_text()
    finally:
        background.shutdown()
    assert out.read_text().startswith("stopped after")
    assert all(process.poll() is not None for _name, process in background.processes)
