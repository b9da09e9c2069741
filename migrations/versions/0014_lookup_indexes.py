"""dataset indexes: what Apiary built on warehouse tables for published lookups and eq filters

Revision ID: 0014
Revises: 0005
Create Date: 2026-11-29 22:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import app.db.columns


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dataset_indexes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('updated_at', app.db.columns.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dataset_id', 'name', name='uq_dataset_indexes_dataset_name')
    )
    with op.batch_alter_table('dataset_indexes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_indexes_dataset_id'), ['dataset_id'], unique=False)


def downgrade():
    with op.batch_alter_table('dataset_indexes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_indexes_dataset_id'))
    op.drop_table('dataset_indexes')
