"""declaration.original_coding: how the archived message's bytes are kept (store/originals.py)

NULL: as received (every row before this revision, and messages under 32 KiB); 'zlib': a zlib stream of the
bytes as received, compressed before the declaration's transaction. A nullable column without a default:
added without rewriting the table on either store.

Revision ID: 0006
Revises: 0005
"""
import zlib

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("declaration", sa.Column("original_coding", sa.String(8), nullable=True))


def downgrade() -> None:
    # The bytes as received again first: an engine before this revision reads original as it is.
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, original FROM declaration WHERE original_coding = 'zlib'")).all()
    for declaration_id, original in rows:
        bind.execute(sa.text("UPDATE declaration SET original = :original WHERE id = :id"),
                     {"original": zlib.decompress(bytes(original)), "id": declaration_id})
    with op.batch_alter_table("declaration") as batch:
        batch.drop_column("original_coding")
