"""``declarations serve``: gunicorn in front of the WSGI application, plus background tasks.

- Workers are sync gunicorn workers (one request at a time each, no shared
  state: everything is in the store), forked by the arbiter; each builds its
  own App (database pool, engine key) after the fork.
- Default workers: 2 x CPUs + 1 (5 on 2 cores): a Dimona spends about two
  thirds of its time waiting for the database (bench/README.md), so more
  processes than cores keep the CPUs busy.
- ``PROMETHEUS_MULTIPROC_DIR``: a fresh temporary folder unless already set,
  removed on exit; each dead worker is marked so its gauges do not linger.
- ``BACKGROUND_TASKS``: callables ``task(settings, stop_event)`` run in their
  own process each, started by the arbiter once it is ready and stopped (the
  event set, then joined) when it exits. The batch inbox watcher registers
  itself here (``register_background_task``).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from typing import Callable

from gunicorn.app.base import BaseApplication

from declarations.settings import Settings

BackgroundTask = Callable[[Settings, "multiprocessing.synchronize.Event"], None]
BACKGROUND_TASKS: list[tuple[str, BackgroundTask]] = []


def register_background_task(name: str, task: BackgroundTask) -> None:
    """Run ``task(settings, stop_event)`` in its own process for as long as ``serve`` runs."""
    BACKGROUND_TASKS.append((name, task))


def default_workers() -> int:
    return 2 * (os.cpu_count() or 1) + 1


class _Background:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.stop = multiprocessing.Event()
        self.processes: list[multiprocessing.Process] = []

    def start(self) -> None:
        for name, task in BACKGROUND_TASKS:
            process = multiprocessing.Process(target=task, args=(self.settings, self.stop), name=name, daemon=True)
            process.start()
            self.processes.append(process)

    def shutdown(self) -> None:
        self.stop.set()
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()


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
        _Gunicorn(options, _Background(settings)).run()
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return 0
