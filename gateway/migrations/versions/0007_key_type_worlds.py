"""test and live keys are two worlds: idempotency, active references and listings per key type

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

``service_requests.key_type`` exists since 0001 and is written from the caller's key; the
backfill re-derives it from the key that made each request (``api_key_id``), by the key's
prefix (``gw_test_...`` or ``gw_live_...``, checked against the type when the key was
issued), so that no row can carry a type its key does not have once every lookup is scoped
by it. Nothing is guessed: every request has its key.

The uniqueness rules become per key type (a test key's Idempotency-Key or active reference
must neither replay, block nor reveal a live request), which only loosens them, so existing
rows always satisfy the new ones. A downgrade tightens them again and fails if a test and a
live request of one agency share an Idempotency-Key or an active reference.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BACKFILL = sa.text("""
UPDATE service_requests SET key_type = CASE
    WHEN (SELECT substr(prefix, 1, 8) FROM api_keys
          WHERE api_keys.id = service_requests.api_key_id) = 'gw_test_' THEN 'test'
    ELSE 'live' END
WHERE api_key_id IN (SELECT id FROM api_keys)
""")


def upgrade() -> None:
    op.get_bind().execute(BACKFILL)
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.drop_constraint('uq_service_requests_idempotency', type_='unique')
        batch_op.drop_constraint('uq_service_requests_active_reference', type_='unique')
        batch_op.drop_index('ix_service_requests_agency_created')
        batch_op.create_unique_constraint(
            'uq_service_requests_key_type_idempotency',
            ['agency_id', 'key_type', 'idempotency_key'])
        batch_op.create_unique_constraint(
            'uq_service_requests_key_type_active_reference',
            ['agency_id', 'key_type', 'service', 'active_reference'])
        batch_op.create_index('ix_service_requests_agency_key_created',
                              ['agency_id', 'key_type', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('service_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_service_requests_agency_key_created')
        batch_op.drop_constraint('uq_service_requests_key_type_active_reference',
                                 type_='unique')
        batch_op.drop_constraint('uq_service_requests_key_type_idempotency', type_='unique')
        batch_op.create_index('ix_service_requests_agency_created',
                              ['agency_id', 'created_at', 'id'], unique=False)
        batch_op.create_unique_constraint('uq_service_requests_active_reference',
                                          ['agency_id', 'service', 'active_reference'])
        batch_op.create_unique_constraint('uq_service_requests_idempotency',
                                          ['agency_id', 'idempotency_key'])
