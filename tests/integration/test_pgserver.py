"""The database test harness works: real SQLite and real PostgreSQL, via SQLAlchemy."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

import pytest


def _roundtrip(url: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        t = sa.Table(
            "harness_probe",
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("label", sa.String(40), nullable=False),
        )
        with engine.begin() as conn:
            meta.create_all(conn)
            conn.execute(t.insert(), [{"id": 1, "label": "één"}, {"id": 2, "label": "deux"}])
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))]
    finally:
        engine.dispose()


def test_database_url_roundtrip(database_url: str) -> None:
    backend = make_url(database_url).get_backend_name()
    assert backend in ("sqlite", "postgresql")
    assert _roundtrip(database_url) == [(1, "één"), (2, "deux")]


def test_database_url_starts_empty(database_url: str) -> None:
    # the table made by the other test (same name) must not be visible here
    engine = sa.create_engine(database_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_is_real_and_fast(postgres_server) -> None:
    url = make_url(postgres_server.url)
    assert url.drivername == "postgresql+psycopg"
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version_num")).scalar_one()
            assert int(version) >= 130000
            if not postgres_server.external:
                assert conn.execute(sa.text("SHOW fsync")).scalar_one() == "off"
                assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
    finally:
        engine.dispose()
    if not postgres_server.external:
        assert postgres_server.startup_seconds < 5, postgres_server.startup_seconds


@pytest.mark.postgres
def test_create_database_from_template(postgres_server) -> None:
    src = postgres_server.create_database(postgres_server.unique_name("tmpl"))
    engine = sa.create_engine(src)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE seeded (id int primary key)"))
        conn.execute(sa.text("INSERT INTO seeded VALUES (7)"))
    engine.dispose()  # a template must have no open connections

    clone = postgres_server.create_database(
        postgres_server.unique_name("clone"), template=make_url(src).database
    )
    engine = sa.create_engine(clone)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM seeded")).scalar_one() == 7
    finally:
        engine.dispose()
    postgres_server.drop_database(make_url(clone).database)
    postgres_server.drop_database(make_url(src).database)
