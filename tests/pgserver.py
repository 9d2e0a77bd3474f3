"""A throwaway PostgreSQL server for the test suite.

Tests run against a real PostgreSQL, never a mock.  This module starts a
private cluster in a temporary directory and hands out SQLAlchemy URLs::

    with start_postgres() as pg:            # None if PostgreSQL is absent
        url = pg.create_database("t1")      # postgresql+psycopg://postgres@127.0.0.1:PORT/t1

How the cluster is made
    * binaries: ``$DECLARATIONS_TEST_PG_BINDIR`` if set, else the newest
      ``/usr/lib/postgresql/*/bin``, else ``initdb``/``pg_ctl`` on ``PATH``;
    * ``initdb --no-sync -A trust -U postgres`` into ``<tmp>/data``; when we
      run as root, initdb/pg_ctl run as the ``postgres`` OS user (via
      ``runuser``, falling back to ``su``) and the temp dir is chowned to it,
      because PostgreSQL refuses to run as root;
    * listens on 127.0.0.1 only, on a free port, plus a unix socket in the
      temp dir; fsync, synchronous_commit and full_page_writes are off,
      autovacuum is off, wal_level=minimal: it is a disposable cluster and a
      crash just loses test data;
    * trust authentication: the cluster is private to this machine and dies
      with the test run.

Lifetime
    The server stops (``pg_ctl stop -m immediate``) and its directory is
    removed when the context manager exits, on :meth:`PostgresServer.stop`, at
    interpreter exit (``atexit``), and -- if the test process is SIGKILLed or
    segfaults, where atexit cannot run -- by a tiny detached watchdog shell
    that polls the owning PID once a second and then cleans up.

pytest-xdist
    Each xdist worker (``-n 2``) starts its *own* server: they share nothing
    (no port, no data dir, no database-name clashes), start in parallel in
    about a second, and die with their worker.  Two servers of 100
    connections each are well within a CI machine.

Existing server
    If ``DECLARATIONS_TEST_PG_URL`` is set (an SQLAlchemy or libpq URL of a
    superuser-ish role that may CREATE DATABASE), no server is started;
    :meth:`create_database` issues ``CREATE DATABASE`` on that server instead,
    with names made unique per process, and :meth:`stop` drops the databases
    it created.

Speed notes
    The cluster lives in /dev/shm (tmpfs) when it has >= 1 GiB free
    (override: ``$DECLARATIONS_TEST_PG_TMPDIR``).  There, startup takes ~1 s
    and ``CREATE DATABASE`` + ``DROP DATABASE`` ~7-10 ms, so the
    ``database_url`` fixture creates a fresh database per test.  On a plain
    disk the pair costs 100-200 ms (checkpoint writes); still correct, slower.
    To
    make a migrated schema per test cheap: build it once in a database, then
    ``create_database(name, template=that_db)`` clones it (the template must
    have no open connections -- dispose your engines first).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

__all__ = ["PostgresServer", "start_postgres", "start_or_say", "start_for", "find_pg_bindir", "last_error", "ENV_URL"]

#: Use this existing server instead of starting one.
ENV_URL = "DECLARATIONS_TEST_PG_URL"
#: Directory holding initdb/pg_ctl, overriding the search.
ENV_BINDIR = "DECLARATIONS_TEST_PG_BINDIR"
#: Parent directory for the cluster's temp dir, overriding the /dev/shm choice.
ENV_TMPDIR = "DECLARATIONS_TEST_PG_TMPDIR"

#: Why the last :func:`start_postgres` returned None (or failed), else None.
last_error: str | None = None

SUPERUSER = "postgres"
DEFAULT_DB = "declarations_test"

_SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "1h",
    "autovacuum": "off",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
    "timezone": "'UTC'",
}

_name_counter = itertools.count(1)


def _pg_version_key(path: str) -> tuple:
    m = re.search(r"/postgresql/([0-9.]+)/bin", path)
    return tuple(int(p) for p in m.group(1).split(".")) if m else (0,)


def find_pg_bindir() -> Path | None:
    """Directory with ``initdb`` and ``pg_ctl``, or None if PostgreSQL is absent."""
    env = os.environ.get(ENV_BINDIR)
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_pg_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _tmp_parent() -> str | None:
    """Where to put the cluster: RAM (/dev/shm) if it has room, else the default temp dir.

    On a tmpfs, CREATE+DROP DATABASE take ~7 ms and startup < 1 s; on a
    virtual disk the same is 100-200 ms and ~2 s (measured on CI-like VMs).
    Docker's default 64 MB /dev/shm is too small and is skipped.
    """
    env = os.environ.get(ENV_TMPDIR)
    if env:
        return env
    shm = "/dev/shm"
    try:
        if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) \
                and shutil.disk_usage(shm).free >= 1 << 30:
            return shm
    except OSError:
        pass
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _normalize_url(url: str) -> str:
    """Give a bare ``postgresql://`` URL the psycopg 3 driver."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _libpq_url(url: str, database: str | None = None) -> str:
    """The libpq URI psycopg.connect() wants, for ``url`` (optionally another database)."""
    from sqlalchemy.engine import make_url

    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


class PostgresServer:
    """A running PostgreSQL server (ours, or the one in ``$DECLARATIONS_TEST_PG_URL``).

    ``url`` is the SQLAlchemy URL of an (empty) database created at start.
    """

    url: str

    def __init__(self) -> None:
        self.url = ""
        self.external = False
        self.startup_seconds = 0.0
        self.tmpdir: Path | None = None
        self.port: int | None = None
        self._bindir: Path | None = None
        self._run_as: str | None = None
        self._watchdog: subprocess.Popen | None = None
        self._admin = None  # psycopg connection to the maintenance db
        self._created: list[str] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._owner_pid = os.getpid()

    # ----------------------------------------------------------- public API
    def create_database(self, name: str, template: str | None = None) -> str:
        """Create an empty database (or a clone of ``template``); return its URL.

        On an external server (``$DECLARATIONS_TEST_PG_URL``) the name gets a
        per-process suffix so parallel workers and runs cannot collide.
        """
        from psycopg import sql

        if self.external:
            name = f"{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if len(name) > 63:
            name = name[:50] + "_" + uuid.uuid4().hex[:8]
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._lock:
            conn = self._admin_conn()
            if conn.info.server_version >= 150000:
                # a plain file copy (+ checkpoint) beats WAL-logging every page here
                stmt += sql.SQL(" STRATEGY FILE_COPY")
            conn.execute(stmt)
            self._created.append(name)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, terminating any connection still open on it."""
        from psycopg import sql

        with self._lock:
            self._admin_conn().execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            if name in self._created:
                self._created.remove(name)

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def unique_name(self, prefix: str = "t") -> str:
        """A database name unique within this server's lifetime."""
        return f"{prefix}_{next(_name_counter)}"

    def stop(self) -> None:
        """Stop the server and remove its files (idempotent; external: drop our dbs)."""
        if self._stopped or os.getpid() != self._owner_pid:
            return  # already done, or we are a forked child: not ours to stop
        self._stopped = True
        if self.external:
            for name in list(self._created):
                try:
                    self.drop_database(name)
                except Exception:  # best effort: the server may be gone
                    pass
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:
                pass
            self._admin = None
        if not self.external and self.tmpdir is not None:
            self._pg_ctl_stop()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if self._watchdog is not None:
            try:  # its own session: kill the shell and its `sleep` together
                os.killpg(self._watchdog.pid, signal.SIGKILL)
                self._watchdog.wait(timeout=5)
            except Exception:
                pass
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def __enter__(self) -> "PostgresServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        kind = "external" if self.external else f"port={self.port}"
        return f"<PostgresServer {kind} url={self.url!r}>"

    # ------------------------------------------------------------- internals
    def _admin_conn(self):
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self._maintenance_dsn, autocommit=True)
        return self._admin

    def _cmd(self, *args: str) -> list[str]:
        """Command line, wrapped to run as the postgres OS user when we are root."""
        argv = [str(a) for a in args]
        if self._run_as is None:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", self._run_as, "--", *argv]
        return ["su", "-s", "/bin/sh", self._run_as, "-c", shlex.join(argv)]

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._cmd(*args),
            cwd=self.tmpdir,  # postgres may not be allowed into the caller's cwd
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )

    def _pg_ctl_stop(self) -> None:
        if self._bindir is None or self.tmpdir is None:
            return
        try:
            self._run(self._bindir / "pg_ctl", "stop", "-D", self.tmpdir / "data",
                      "-m", "immediate", "-w", timeout=30)
        except Exception:
            pass

    def _start_local(self, bindir: Path) -> None:
        self._bindir = bindir
        t0 = time.monotonic()
        if os.geteuid() == 0:
            for user in (SUPERUSER, "nobody"):
                try:
                    pw = pwd.getpwnam(user)
                    break
                except KeyError:
                    continue
            else:
                raise RuntimeError("running as root and no 'postgres' OS user to run PostgreSQL")
            self._run_as = pw.pw_name
        self.tmpdir = Path(tempfile.mkdtemp(prefix="decl-pg-", dir=_tmp_parent()))
        if self._run_as is not None:
            os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
        data = self.tmpdir / "data"

        r = self._run(bindir / "initdb", "-D", data, "-U", SUPERUSER, "-A", "trust",
                      "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}")

        settings = dict(_SERVER_SETTINGS)
        # unix sockets have a ~107 byte path limit; TCP is what we use anyway
        settings["unix_socket_directories"] = (
            f"'{self.tmpdir}'" if len(str(self.tmpdir)) < 90 else "''"
        )
        # written by us as root into a postgres-owned dir: keep it readable
        with open(data / "postgresql.conf", "a") as f:
            f.write("\n# tests/pgserver.py: throwaway test cluster\n")
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())

        log = self.tmpdir / "server.log"
        last = ""
        for _attempt in range(5):  # another process may grab the free port first
            self.port = _free_port()
            r = self._run(bindir / "pg_ctl", "start", "-D", data, "-l", log, "-w",
                          "-t", "30", "-o", f"-p {self.port}")
            if r.returncode == 0:
                break
            last = r.stdout + "\n" + (log.read_text(errors="replace") if log.exists() else "")
            if "Address already in use" not in last and "could not bind" not in last:
                break
        else:
            r = None
        if r is None or r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{last[-4000:]}")

        self._maintenance_dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        self.url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{DEFAULT_DB}"
        self._start_watchdog()
        self.create_database(DEFAULT_DB)
        self._created.clear()  # the default db is not a per-test db
        self.startup_seconds = time.monotonic() - t0

    def _start_watchdog(self) -> None:
        """Detached shell that cleans up if this process dies without atexit."""
        stop = shlex.join(self._cmd(str(self._bindir / "pg_ctl"), "stop", "-D",
                                    str(self.tmpdir / "data"), "-m", "immediate"))
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"{stop} >/dev/null 2>&1; rm -rf {shlex.quote(str(self.tmpdir))}"
        )
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # not hit by the terminal's Ctrl-C before we are
            close_fds=True,
        )

    def _use_external(self, url: str) -> None:
        self.external = True
        t0 = time.monotonic()
        self.url = _normalize_url(url)
        self._maintenance_dsn = _libpq_url(self.url)
        self._admin_conn()  # fail now if unreachable
        self.startup_seconds = time.monotonic() - t0


def start_postgres() -> PostgresServer | None:
    """Start a throwaway server (or attach to ``$DECLARATIONS_TEST_PG_URL``).

    Returns None -- with the reason in :data:`last_error` -- when PostgreSQL
    binaries are absent.  Raises RuntimeError when they exist but the server
    cannot be started (that is a real failure, not a skip).
    """
    global last_error
    last_error = None
    server = PostgresServer()
    env_url = os.environ.get(ENV_URL)
    if env_url:
        server._use_external(env_url)
        atexit.register(server.stop)
        return server
    bindir = find_pg_bindir()
    if bindir is None:
        last_error = (
            "PostgreSQL binaries not found (looked in /usr/lib/postgresql/*/bin and PATH); "
            "run `bash scripts/setup.sh` (apt-get install postgresql) or set "
            f"{ENV_URL} to an existing server"
        )
        return None
    atexit.register(server.stop)
    try:
        server._start_local(bindir)
    except BaseException as exc:
        last_error = str(exc)
        server.stop()
        raise
    return server


if __name__ == "__main__":  # quick manual check: python tests/pgserver.py
    t = time.monotonic()
    with start_postgres() or PostgresServer() as pg:
        print(pg, f"started in {time.monotonic() - t:.2f}s", last_error or "")
        if pg.url:
            t = time.monotonic()
            n = 20
            for i in range(n):
                name = pg.unique_name()
                pg.create_database(name)
                pg.drop_database(name)
            print(f"create+drop database: {(time.monotonic() - t) / n * 1000:.1f} ms")


def start_or_say() -> PostgresServer | None:
    """For the benchmarks: ``start_postgres``, saying why on stderr when there is no server."""
    server = start_postgres()
    if server is None:
        print(f"no PostgreSQL: {last_error}", file=sys.stderr)
    return server


def start_for(backends: list[str]) -> PostgresServer | None:
    """For the benchmarks: a server when ``backends`` names postgresql; if there is none, say why and
    drop postgresql from ``backends`` (the others still run)."""
    if "postgresql" not in backends:
        return None
    server = start_or_say()
    if server is None:
        backends.remove("postgresql")
    return server
