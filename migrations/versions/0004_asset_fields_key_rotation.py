"""asset fields, deleted assets, key rotation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:40:00

Projects get icon and color; published assets theme, icon, sort_order, is_public and roles; deleted assets leave a
row in deleted_assets so their audit log stays reachable; API keys keep the previous secret's hash during a
rotation's grace period.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import app.db.columns


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('icon', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('color', sa.String(length=7), nullable=True))

    with op.batch_alter_table('published_assets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('theme', JSON, server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(sa.Column('icon', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('sort_order', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('roles', JSON, server_default=sa.text("'[]'"), nullable=False))

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_key_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_key_expires_at', app.db.columns.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('rotated_at', app.db.columns.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_keys_previous_key_hash'), ['previous_key_hash'], unique=True)

    op.create_table('deleted_assets',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('asset_type', sa.String(length=20), nullable=False),
    sa.Column('asset_key', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('last_version', sa.Integer(), nullable=True),
    sa.Column('deleted_by', sa.String(length=80), nullable=False),
    sa.Column('deleted_at', app.db.columns.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deleted_assets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deleted_assets_org_id'), ['org_id'], unique=False)


def downgrade():
    with op.batch_alter_table('deleted_assets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deleted_assets_org_id'))
    op.drop_table('deleted_assets')

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_previous_key_hash'))
        batch_op.drop_column('rotated_at')
        batch_op.drop_column('previous_key_expires_at')
        batch_op.drop_column('previous_key_hash')

    with op.batch_alter_table('published_assets', schema=None) as batch_op:
        batch_op.drop_column('roles')
        batch_op.drop_column('is_public')
        batch_op.drop_column('sort_order')
        batch_op.drop_column('icon')
        batch_op.drop_column('theme')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('color')
        batch_op.drop_column('icon')
