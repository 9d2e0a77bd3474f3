"""archive columns compressed with lz4 on PostgreSQL (a no-op on SQLite, and on a server built without lz4)

A DmfA of 1,000 workers is ~850 KB of XML kept whole in declaration.original. PostgreSQL compresses such
values when it stores them (TOAST); its default, pglz, costs ~4.7 ms of server CPU for one such DmfA,
lz4 ~1.7 ms for about the same size on disk (bench/README.md, session 4). Values already stored keep
their compression; new ones get lz4.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = (("declaration", "original"), ("declaration", "result"))


def _lz4_available(bind) -> bool:
    return bind.execute(sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                                "WHERE name = 'default_toast_compression'")).scalar() is True


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _lz4_available(bind):
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
