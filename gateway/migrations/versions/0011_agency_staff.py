"""agency staff: console accounts tied to one agency and one key type; requests made in the
console have no API key

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agency_id', sa.String(36), nullable=True))
        batch_op.add_column(sa.Column('key_type', sa.String(8), nullable=True))
        batch_op.create_index(batch_op.f('ix_admin_users_agency_id'), ['agency_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_admin_users_agency_id_agencies'),
                                    'agencies', ['agency_id'], ['id'])
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.alter_column('api_key_id', existing_type=sa.String(36), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.alter_column('api_key_id', existing_type=sa.String(36), nullable=False)
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_admin_users_agency_id_agencies'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_admin_users_agency_id'))
        batch_op.drop_column('key_type')
        batch_op.drop_column('agency_id')
