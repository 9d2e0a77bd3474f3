"""Run ``declarations serve`` as a real subprocess on a free loopback port (e2e tests, bench/soap.py).

The home gets ``init`` and a directory (the demo one by default) in this
process first, so the server starts on a ready store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DEMO_DIRECTORY = REPO / "fixtures" / "demo" / "directory.xml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_home(home: Path, env: dict[str, str], directory: Path = DEMO_DIRECTORY) -> None:
    from declarations.bootstrap import App
    from declarations.services import directory as directory_service
    from declarations.settings import Settings

    app = App(Settings.from_env(env))
    try:
        app.init()
        directory_service.load(app.engine, directory.read_bytes())
    finally:
        app.close()


class _PortTaken(Exception):
    pass


class Server:
    """``with Server(home, now=..., database_url=...) as server: server.url``"""

    def __init__(self, home: Path, *, now: str | None = None, database_url: str | None = None,
                 workers: int = 2, extra_env: dict[str, str] | None = None, prepare: bool = True):
        self.home = Path(home)
        self.port = free_port()
        self.workers = workers
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("DECLARATIONS_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        self.env["DECLARATIONS_HOME"] = str(self.home)
        # the server runs the same checkout as the caller, whatever is installed
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))
        if now:
            self.env["DECLARATIONS_NOW"] = now
        if database_url:
            self.env["DECLARATIONS_DATABASE_URL"] = database_url
        self.env.update(extra_env or {})
        self.prepare = prepare
        self.process: subprocess.Popen | None = None
        self.log = self.home / "serve.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/soap/declarations"

    def start(self, timeout: float = 30) -> "Server":
        self.home.mkdir(parents=True, exist_ok=True)
        if self.prepare:
            prepare_home(self.home, self.env)
        for attempt in range(3):
            try:
                return self._start(timeout)
            except _PortTaken:
                self.port = free_port()  # another process took the free port meanwhile
        return self._start(timeout)

    def _start(self, timeout: float) -> "Server":
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "declarations.channels.cli", "serve", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers)], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "Address already in use" in self.log_text():
                    self.log.write_bytes(b"")
                    raise _PortTaken()
                raise RuntimeError(f"declarations serve exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"declarations serve did not answer within {timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
