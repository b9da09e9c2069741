"""personal access tokens remember the token that minted them (revocation cascades to descendants)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 23:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('personal_access_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_personal_access_tokens_parent_id'), ['parent_id'], unique=False)
        batch_op.create_foreign_key('fk_personal_access_tokens_parent_id', 'personal_access_tokens', ['parent_id'],
                                    ['id'], ondelete='CASCADE')


def downgrade():
    with op.batch_alter_table('personal_access_tokens', schema=None) as batch_op:
        batch_op.drop_constraint('fk_personal_access_tokens_parent_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_personal_access_tokens_parent_id'))
        batch_op.drop_column('parent_id')
