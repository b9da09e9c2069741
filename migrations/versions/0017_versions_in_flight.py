"""versions in flight: routing over published versions, its change log, versions in the audit log, forced versions

Revision ID: 0017
Revises: 0021
Create Date: 2026-11-30 00:50:00

"""
from alembic import op
import sqlalchemy as sa

from sqlalchemy.dialects import postgresql

from app.db.columns import UTCDateTime

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('published_assets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('routing', JSON_TYPE, nullable=True))
    op.create_table('routing_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('changed_by', sa.String(length=80), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.Column('before', JSON_TYPE, nullable=False),
    sa.Column('after', JSON_TYPE, nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['published_assets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('routing_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routing_changes_asset_id'), ['asset_id'], unique=False)
    with op.batch_alter_table('audit_logs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('shadow', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('call_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('summary', JSON_TYPE, nullable=True))
        batch_op.create_index('ix_audit_logs_asset_version', ['asset_id', 'version'], unique=False)
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('can_force_version', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('can_force_version')
    with op.batch_alter_table('audit_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_logs_asset_version')
        batch_op.drop_column('summary')
        batch_op.drop_column('call_id')
        batch_op.drop_column('shadow')
        batch_op.drop_column('version')
    with op.batch_alter_table('routing_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_changes_asset_id'))
    op.drop_table('routing_changes')
    with op.batch_alter_table('published_assets', schema=None) as batch_op:
        batch_op.drop_column('routing')
