"""batch inbox: batch (claim, lease, answers) and batch_item

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('batch',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.String(length=110), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('lease_until', sa.Float(), nullable=True),
    sa.Column('sender_id', sa.String(length=10), nullable=True),
    sa.Column('batch_id', sa.String(length=64), nullable=True),
    sa.Column('item_count', sa.Integer(), nullable=True),
    sa.Column('items_done', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('code', sa.String(length=4), nullable=True),
    sa.Column('ack', sa.LargeBinary(), nullable=True),
    sa.Column('result', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch')),
    sa.UniqueConstraint('file_sha256', name=op.f('uq_batch_file_sha256')),
    sa.UniqueConstraint('sender_id', 'batch_id', name='uq_batch_sender_batch_id'),
    sqlite_autoincrement=True
    )
    op.create_table('batch_item',
    sa.Column('batch', Id, nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('declaration_id', Id, nullable=False),
    sa.ForeignKeyConstraint(['batch'], ['batch.id'], name=op.f('fk_batch_item_batch_batch')),
    sa.ForeignKeyConstraint(['declaration_id'], ['declaration.id'], name=op.f('fk_batch_item_declaration_id_declaration')),
    sa.PrimaryKeyConstraint('batch', 'position', name=op.f('pk_batch_item'))
    )


def downgrade() -> None:
    op.drop_table('batch_item')
    op.drop_table('batch')
