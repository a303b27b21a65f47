"""notices: citizen notices, their messages per channel, opt-outs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("agency_id", sa.String(36), nullable=False),
        sa.Column("key_type", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("essential", sa.Boolean(), nullable=False),
        sa.Column("to_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("phone_digest", sa.String(64), nullable=False),
        sa.Column("params_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("notifier", sa.String(64), nullable=True),
        sa.Column("provider_message_id", sa.String(128), nullable=True),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["service_requests.id"],
                                name=op.f("fk_notices_request_id_service_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    op.create_index(op.f("ix_notices_request_id"), "notices", ["request_id"])
    op.create_index(op.f("ix_notices_phone_digest"), "notices", ["phone_digest"])
    op.create_index(op.f("ix_notices_status"), "notices", ["status"])
    op.create_table(
        "notice_messages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("notifier", sa.String(64), nullable=False),
        sa.Column("provider_message_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("raw_status", sa.String(32), nullable=True),
        sa.Column("late_status", sa.String(16), nullable=True),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.Column("failed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["notice_id"], ["notices.id"],
                                name=op.f("fk_notice_messages_notice_id_notices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_messages")),
        sa.UniqueConstraint("notifier", "provider_message_id",
                            name="uq_notice_messages_notifier_provider_message_id"),
    )
    op.create_index(op.f("ix_notice_messages_notice_id"), "notice_messages", ["notice_id"])
    op.create_table(
        "notice_opt_outs",
        sa.Column("phone_digest", sa.String(64), nullable=False),
        sa.Column("notifier", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("phone_digest", name=op.f("pk_notice_opt_outs")),
    )


def downgrade() -> None:
    op.drop_table("notice_opt_outs")
    op.drop_index(op.f("ix_notice_messages_notice_id"), table_name="notice_messages")
    op.drop_table("notice_messages")
    op.drop_index(op.f("ix_notices_status"), table_name="notices")
    op.drop_index(op.f("ix_notices_phone_digest"), table_name="notices")
    op.drop_index(op.f("ix_notices_request_id"), table_name="notices")
    op.drop_table("notices")
