"""``declarations serve``: gunicorn in front of the WSGI application, plus background tasks.

- Workers are sync gunicorn workers (one request at a time each, no shared
  state: everything is in the store), forked by the arbiter; each builds its
  own App (database pool, engine key) after the fork.
- Default workers: 2 x CPUs + 1 (5 on 2 cores): a Dimona spends about two
  thirds of its time waiting for the database (bench/README.md), so more
  processes than cores keep the CPUs busy.
- ``PROMETHEUS_MULTIPROC_DIR``: a fresh temporary folder unless already set,
  removed on exit; each dead worker is marked so its gauges do not linger.
- ``BACKGROUND_TASKS``: ``"module:function"`` targets, each run as
  ``function(settings, stop_event)`` in a process of its own (a fresh
  interpreter: ``python -m declarations.channels.soap.background``), started
  by the arbiter once it is ready, sent SIGTERM (which sets ``stop_event``)
  and waited for when it exits. The batch inbox watcher is to register
  itself here (``register_background_task``), e.g. from
  declarations/channels/batch/commands.py, which the CLI imports before it
  runs ``serve``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile

from gunicorn.app.base import BaseApplication

from declarations.settings import Settings

# "module:function" -> function(settings, stop_event), run in a fresh interpreter of its own.
BACKGROUND_TASKS: list[tuple[str, str]] = []


def register_background_task(name: str, target: str) -> None:
    """Run ``target`` ("package.module:function", called as ``function(settings, stop_event)``) in its own
    process for as long as ``serve`` runs; ``stop_event`` (a ``threading.Event``) is set on SIGTERM."""
    if ":" not in target:
        raise ValueError(f"a background task is 'module:function', not {target!r}")
    BACKGROUND_TASKS.append((name, target))


def default_workers() -> int:
    return 2 * (os.cpu_count() or 1) + 1


class _Background:
    """The background tasks' processes: plain subprocesses, not multiprocessing children, so that a
    gunicorn worker forked from the arbiter neither inherits nor terminates them when it exits."""

    def __init__(self):
        self.processes: list[tuple[str, subprocess.Popen]] = []

    def start(self) -> None:
        for name, target in BACKGROUND_TASKS:
            process = subprocess.Popen([sys.executable, "-m", "declarations.channels.soap.background", name, target])
            self.processes.append((name, process))

    def shutdown(self) -> None:
        for _name, process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict, background: _Background):
        self.options = options
        self.background = background
        super().__init__()

    def load_config(self) -> None:
        from declarations.channels.soap import metrics

        for key, value in self.options.items():
            if key in self.cfg.settings:  # control_socket_disable exists from gunicorn 24 on
                self.cfg.set(key, value)
        self.cfg.set("child_exit", lambda server, worker: metrics.worker_exited(worker.pid))
        self.cfg.set("when_ready", lambda server: self.background.start())
        self.cfg.set("on_exit", lambda server: self.background.shutdown())

    def load(self):
        from declarations.channels.soap.wsgi import application_factory
        return application_factory()


def serve(settings: Settings, *, bind: str, workers: int) -> int:
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="declarations-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    options = {
        "bind": [bind],
        "workers": workers,
        "worker_class": "sync",
        "timeout": 120,           # a 5 MiB DmfA takes seconds, not minutes
        "graceful_timeout": 20,
        "keepalive": 5,
        "preload_app": False,     # each worker imports and builds its own App after the fork
        "accesslog": None,
        "errorlog": "-",
        "loglevel": os.environ.get("DECLARATIONS_LOG_LEVEL", "info"),
        "proc_name": "declarations-serve",
        "control_socket_disable": True,  # one fixed socket path per user: two servers would fight for it
    }
    try:
        _Gunicorn(options, _Background()).run()
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return 0
