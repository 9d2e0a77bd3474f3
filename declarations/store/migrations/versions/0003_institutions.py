"""institutions: integration register, subscriptions, notifications (with a gapless
per-institution counter), institution MessageIds (A005), the access log and its head row

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('access_log',
    sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('at', sa.String(length=40), nullable=False),
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('operation', sa.String(length=32), nullable=False),
    sa.Column('inss', sa.String(length=11), nullable=True),
    sa.Column('data_type', sa.String(length=32), nullable=True),
    sa.Column('window', sa.String(length=40), nullable=True),
    sa.Column('outcome', sa.String(length=8), nullable=False),
    sa.Column('authorization', sa.String(length=200), nullable=True),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.Column('previous_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('sequence', name=op.f('pk_access_log'))
    )
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index('ix_access_log_inss', ['inss'], unique=False)

    head = op.create_table('access_log_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('previous_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_log_head'))
    )
    # The chain starts from the genesis hash: one head row, locked by every writer.
    op.bulk_insert(head, [{'id': 1, 'sequence': 0, 'hash': '0' * 64, 'previous_hash': '0' * 64}])
    op.create_table('institution_message',
    sa.Column('institution_id', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('institution_id', 'message_id', name=op.f('pk_institution_message'))
    )
    op.create_table('institution_sequence',
    sa.Column('institution_id', sa.String(length=16), nullable=False),
    sa.Column('last_sequence', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('institution_id', name=op.f('pk_institution_sequence'))
    )
    op.create_table('notification',
    sa.Column('institution_id', sa.String(length=16), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('inss', sa.String(length=11), nullable=False),
    sa.Column('data_type', sa.String(length=32), nullable=False),
    sa.Column('declaration_id', Id, nullable=False),
    sa.Column('change', sa.String(length=10), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('authorization', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('institution_id', 'sequence', name=op.f('pk_notification'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_inss', ['inss'], unique=False)

    op.create_table('register_entry',
    sa.Column('institution_id', sa.String(length=16), nullable=False),
    sa.Column('inss', sa.String(length=11), nullable=False),
    sa.Column('capacity', sa.String(length=64), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('institution_id', 'inss', 'capacity', 'valid_from', name=op.f('pk_register_entry'))
    )
    with op.batch_alter_table('register_entry', schema=None) as batch_op:
        batch_op.create_index('ix_register_entry_inss', ['inss'], unique=False)

    op.create_table('subscription',
    sa.Column('institution_id', sa.String(length=16), nullable=False),
    sa.Column('data_type', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('institution_id', 'data_type', name=op.f('pk_subscription'))
    )
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_data_type', ['data_type'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_data_type')

    op.drop_table('subscription')
    with op.batch_alter_table('register_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_register_entry_inss')

    op.drop_table('register_entry')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_inss')

    op.drop_table('notification')
    op.drop_table('institution_sequence')
    op.drop_table('institution_message')
    op.drop_table('access_log_head')
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_access_log_inss')

    op.drop_table('access_log')
