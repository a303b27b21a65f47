"""newest webhook per courier

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

The webhook-silence alert (``gateway.reports.webhook_silence``) reads each courier's newest
accepted webhook at every scrape and dashboard view: an index makes that one lookup instead
of a scan of the inbox, which only grows.
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.create_index('ix_provider_events_courier_source_received',
                              ['courier', 'source', 'received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.drop_index('ix_provider_events_courier_source_received')
