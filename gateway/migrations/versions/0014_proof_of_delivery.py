"""proof of delivery: the images couriers report, and the courier's delivery time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_requests") as batch_op:
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))
    op.create_table(
        "proof_images",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("courier", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(32), nullable=True),
        sa.Column("url_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("link_digest", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["service_requests.id"],
                                name=op.f("fk_proof_images_request_id_service_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proof_images")),
        sa.UniqueConstraint("request_id", "index", name="uq_proof_images_request_id_index"),
    )
    op.create_index(op.f("ix_proof_images_request_id"), "proof_images", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_proof_images_request_id"), table_name="proof_images")
    op.drop_table("proof_images")
    with op.batch_alter_table("service_requests") as batch_op:
        batch_op.drop_column("delivered_at")
