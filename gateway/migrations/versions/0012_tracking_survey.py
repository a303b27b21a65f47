"""tracking and survey: the public tracking token, the courier's first name, plate and ETA
on each request, and the citizens' survey answers (SKM)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Requests made before this revision have no tracking token (their page does not exist); the
columns are nullable and nothing is backfilled.
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking_digest', sa.String(64), nullable=True))
        batch_op.add_column(sa.Column('tracking_token_ciphertext', sa.LargeBinary(),
                                      nullable=True))
        batch_op.add_column(sa.Column('courier_first_name', sa.String(30), nullable=True))
        batch_op.add_column(sa.Column('courier_plate', sa.String(16), nullable=True))
        batch_op.add_column(sa.Column('courier_eta', sa.DateTime(), nullable=True))
        batch_op.create_unique_constraint('uq_service_requests_tracking_digest',
                                          ['tracking_digest'])
    op.create_table(
        'survey_answers',
        sa.Column('id', sa.String(36), nullable=False),
        sa.Column('request_id', sa.String(36), nullable=False),
        sa.Column('agency_id', sa.String(36), nullable=False),
        sa.Column('service', sa.String(64), nullable=False),
        sa.Column('key_type', sa.String(8), nullable=False),
        sa.Column('language', sa.String(8), nullable=False),
        *[sa.Column(f'u{n}', sa.Integer(), nullable=False) for n in range(1, 10)],
        sa.Column('comment_ciphertext', sa.LargeBinary(), nullable=True),
        sa.Column('complaint_ciphertext', sa.LargeBinary(), nullable=True),
        sa.Column('has_complaint', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['service_requests.id'],
                                name=op.f('fk_survey_answers_request_id_service_requests')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_answers')),
        sa.UniqueConstraint('request_id', name=op.f('uq_survey_answers_request_id')),
    )
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_answers_agency_id'), ['agency_id'],
                              unique=False)
        batch_op.create_index('ix_survey_answers_service_created', ['service', 'created_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_answers_service_created')
        batch_op.drop_index(batch_op.f('ix_survey_answers_agency_id'))
    op.drop_table('survey_answers')
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.drop_constraint('uq_service_requests_tracking_digest', type_='unique')
        batch_op.drop_column('courier_eta')
        batch_op.drop_column('courier_plate')
        batch_op.drop_column('courier_first_name')
        batch_op.drop_column('tracking_token_ciphertext')
        batch_op.drop_column('tracking_digest')
