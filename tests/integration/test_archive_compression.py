"""The archived declarations are compressed with lz4 on PostgreSQL (migration 0004), and read back whole."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from declarations.store import tables as t


def test_the_archive_columns_use_lz4_and_keep_every_byte(app, tmp_path):
    if app.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    with app.engine.connect() as c:
        if not c.execute(text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                              "WHERE name = 'default_toast_compression'")).scalar():
            pytest.skip("this PostgreSQL is built without lz4")
        methods = dict(c.execute(text("SELECT attname, attcompression FROM pg_attribute "
                                      "WHERE attrelid = 'declaration'::regclass AND attname IN ('original', 'result')")
                                 ).all())
    assert methods == {"original": "l", "result": "l"}
    original = b"<DmfA>" + b"".join(b"<Worker><INSS>%011d</INSS></Worker>" % n for n in range(20000)) + b"</DmfA>"
    with app.engine.begin() as c:
        declaration = c.execute(t.declaration.insert().values(
            received_at=text("now()"), channel="CLI", status="REFUSED", original=original, result=b"<r/>",
        ).returning(t.declaration.c.id)).scalar_one()
        stored = c.execute(text("SELECT pg_column_compression(original) FROM declaration WHERE id = :id"),
                           {"id": declaration}).scalar()
    assert stored == "lz4"
    with app.engine.connect() as c:
        assert bytes(c.execute(select(t.declaration.c.original).where(t.declaration.c.id == declaration))
                     .scalar_one()) == original
