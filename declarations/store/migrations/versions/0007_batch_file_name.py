"""batch: an index on (file_name, status) for batches.held_elsewhere

Every inbox pass asks, for every complete file in the inbox, whether another process holds an unfinished
batch of that name (then the file is left alone, not copied into the archive and hashed again to find the
claim taken). One row per batch file ever taken: without an index, a scan of all of them per file per pass.

Revision ID: 0007
Revises: 0006
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_batch_file_name_status", "batch", ["file_name", "status"])


def downgrade() -> None:
    op.drop_index("ix_batch_file_name_status", table_name="batch")
