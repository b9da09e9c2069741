"""audit records keep the version, request id, caller, timing and (payload mode) the request and answer; refused
API keys are recorded in auth_failures

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 00:50:00

"""
from alembic import op
import sqlalchemy as sa

from app.db.columns import JSONType, UTCDateTime  # the column types app/db uses


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_logs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('client_ip', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('user_agent', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('timing', JSONType, nullable=True))
        batch_op.add_column(sa.Column('request_payload', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('response_payload', sa.Text(), nullable=True))
    op.create_table(
        'auth_failures',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=True),
        sa.Column('asset_id', sa.Integer(), nullable=True),
        sa.Column('key_prefix', sa.String(length=16), nullable=True),
        sa.Column('client_ip', sa.String(length=64), nullable=True),
        sa.Column('route', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_auth_failures_org_created', 'auth_failures', ['org_id', 'created_at'], unique=False)


def downgrade():
    op.drop_index('ix_auth_failures_org_created', table_name='auth_failures')
    op.drop_table('auth_failures')
    with op.batch_alter_table('audit_logs', schema=None) as batch_op:
        for name in ('response_payload', 'request_payload', 'timing', 'user_agent', 'client_ip', 'request_id'):
            batch_op.drop_column(name)
