"""uploads: spreadsheets of requests (their rows sealed) and each row's preview and outcome

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'uploads',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('agency_id', sa.String(36), nullable=False),
        sa.Column('service', sa.String(64), nullable=False),
        sa.Column('key_type', sa.String(8), nullable=False),
        sa.Column('uploaded_by', sa.String(64), nullable=False),
        sa.Column('file_name', sa.String(200), nullable=False),
        sa.Column('file_kind', sa.String(8), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in (
            'total_rows', 'done_rows', 'invalid_rows', 'created_rows', 'replayed_rows',
            'failed_rows')],
        sa.Column('rows_ciphertext', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'],
                                name=op.f('fk_uploads_agency_id_agencies')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads')),
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index('ix_uploads_agency_created', ['agency_id', 'created_at'],
                              unique=False)
    op.create_table(
        'upload_rows',
        sa.Column('upload_id', sa.String(36), nullable=False),
        sa.Column('row', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('request_id', sa.String(36), nullable=True),
        sa.Column('error', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'],
                                name=op.f('fk_upload_rows_upload_id_uploads')),
        sa.PrimaryKeyConstraint('upload_id', 'row', name=op.f('pk_upload_rows')),
    )


def downgrade() -> None:
    op.drop_table('upload_rows')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_uploads_agency_created')
    op.drop_table('uploads')
