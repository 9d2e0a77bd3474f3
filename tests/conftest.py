"""Shared pytest fixtures.

Databases -- tests run against a REAL SQLite and a REAL PostgreSQL, never mocks:

``postgres_server`` (session)
    A :class:`pgserver.PostgresServer`: a throwaway cluster started for this
    process (each xdist worker gets its own; ~1 s), or the server named by
    ``$DECLARATIONS_TEST_PG_URL``.  If PostgreSQL is not installed the
    dependent tests are skipped -- except when ``$CI`` is set, where the run
    fails (CI must exercise PostgreSQL).

``database_url`` (function, parametrized ``sqlite`` / ``postgresql``)
    The SQLAlchemy URL of a fresh, empty database for one test:
    ``sqlite:///<tmp_path>/test.db`` or a new database created on
    ``postgres_server`` (CREATE DATABASE ~10 ms on the tmpfs cluster) and
    dropped -- WITH (FORCE), so leaked connections do not matter -- after the
    test.  Select one backend with ``-k sqlite`` / ``-k postgresql`` or
    ``-m "not postgres"``.  Dispose your engines anyway.

    Faster for many tests on a migrated schema: migrate once into
    ``postgres_server.create_database("tmpl")``, dispose the engine, then per
    test ``postgres_server.create_database(name, template="tmpl")``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

# tests/ is not a package: make ``import pgserver`` work under any rootdir /
# import mode (pytest's default would also do it, but do not depend on that).
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import pgserver  # noqa: E402


# --------------------------------------------------------------------------
# PostgreSQL availability: decided once, loudly, before any test runs on CI.
# --------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not os.environ.get(pgserver.ENV_URL) \
            and pgserver.find_pg_bindir() is None:
        raise pytest.UsageError(
            "CI is set but PostgreSQL is not installed: the PostgreSQL tests would be "
            "skipped. Run `bash scripts/setup.sh` first (or set "
            f"{pgserver.ENV_URL})."
        )


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(pgserver.ENV_URL):
        return f"postgresql: external server from ${pgserver.ENV_URL}"
    bindir = pgserver.find_pg_bindir()
    return f"postgresql: {'throwaway cluster from ' + str(bindir) if bindir else 'NOT FOUND (tests skipped)'}"


# --------------------------------------------------------------------------
# Database fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server (see module docstring)."""
    try:
        server = pgserver.start_postgres()
    except Exception as exc:  # binaries present but the server did not start
        pytest.fail(f"could not start the test PostgreSQL server: {exc}", pytrace=False)
    if server is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {pgserver.last_error}", pytrace=False)
        pytest.skip(pgserver.last_error or "PostgreSQL unavailable")
    with server:
        yield server


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """SQLAlchemy URL of a fresh, empty database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server = request.getfixturevalue("postgres_server")  # only started if needed
    name = server.unique_name("t")
    url = server.create_database(name)
    yield url
    server.drop_database(make_url(url).database)


# --------------------------------------------------------------------------
# Domain fixtures (store, demo directory, ...) go below this line.
# --------------------------------------------------------------------------

import datetime as _dt
import shutil

from declarations.bootstrap import App
from declarations.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEMO_DIRECTORY = REPO / "fixtures" / "demo" / "directory.xml"
DEMO_KEYS = REPO / "fixtures" / "demo" / "keys"
# The fixture world's "now": Q4 2025, so Q3 2025 is the last declarable quarter.
FIXTURE_NOW = _dt.datetime.fromisoformat("2025-11-15T10:00:00+01:00")


@pytest.fixture(scope="session")
def engine_home(tmp_path_factory) -> Path:
    """One engine key for the whole session (key creation is the slow part of init)."""
    from declarations.xmlio import keys

    home = tmp_path_factory.mktemp("engine-home")
    keys.ensure_engine_key(home)
    return home


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory, request):
    """Migrated, demo-loaded template databases, made once per backend and copied per test."""
    cache: dict[str, str] = {}

    def template(backend: str) -> str:
        if backend in cache:
            return cache[backend]
        from declarations.services import directory
        from declarations.store import schema
        from declarations.store.database import make_engine

        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'template.db'}"
        else:
            url = request.getfixturevalue("postgres_server").create_database("tmpl_declarations")
        engine = make_engine(url)
        schema.upgrade(engine)
        directory.load(engine, DEMO_DIRECTORY.read_bytes())
        engine.dispose()
        cache[backend] = url
        return url

    return template


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)])
def app(request, tmp_path, engine_home, _migrated_templates):
    """The engine on a fresh store (schema migrated, demo directory loaded), clock at FIXTURE_NOW."""
    template = _migrated_templates(request.param)
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(make_url(template).database, path)
        url, drop = f"sqlite:///{path}", None
    else:
        server = request.getfixturevalue("postgres_server")
        name = server.unique_name("t")
        url, drop = server.create_database(name, template=make_url(template).database), name
    settings = Settings.from_env({"DECLARATIONS_HOME": str(engine_home), "DECLARATIONS_DATABASE_URL": url,
                                  "DECLARATIONS_NOW": FIXTURE_NOW.isoformat()})
    application = App(settings)
    yield application
    application.close()
    if drop:
        request.getfixturevalue("postgres_server").drop_database(drop)


@pytest.fixture(scope="session")
def demo_signer():
    """Sign as a demo sender: ``demo_signer('sender-1001')``."""
    from declarations.xmlio.signature import Signer

    cache: dict[str, Signer] = {}

    def signer(name: str) -> Signer:
        if name not in cache:
            cache[name] = Signer.from_files(DEMO_KEYS / f"{name}.key.pem", DEMO_KEYS / f"{name}.cert.pem")
        return cache[name]

    return signer
