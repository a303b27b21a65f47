"""costs and budgets: quotes asked before booking, prices on requests, budgets

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

REQUEST_COLUMNS = (
    ("quoted_amount", sa.BigInteger()),
    ("final_amount", sa.BigInteger()),
    ("cost_currency", sa.String(3)),
    ("reserved_amount", sa.BigInteger()),
    ("budget_periods", sa.String(15)),
    ("budget_approved_by", sa.String(128)),
)


def upgrade() -> None:
    with op.batch_alter_table("service_requests") as batch:
        for name, type_ in REQUEST_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "delivery_quotes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("courier", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("distance_m", sa.Integer(), nullable=True),
        sa.Column("valid_until", sa.DateTime(), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["service_requests.id"],
                                name=op.f("fk_delivery_quotes_request_id_service_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_quotes")),
    )
    op.create_index(op.f("ix_delivery_quotes_request_id"), "delivery_quotes", ["request_id"])
    op.create_table(
        "budgets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("agency_id", sa.String(36), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("limit_amount", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"],
                                name=op.f("fk_budgets_agency_id_agencies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        sa.UniqueConstraint("agency_id", "service", "period",
                            name="uq_budgets_agency_service_period"),
    )
    op.create_index(op.f("ix_budgets_agency_id"), "budgets", ["agency_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_budgets_agency_id"), table_name="budgets")
    op.drop_table("budgets")
    op.drop_index(op.f("ix_delivery_quotes_request_id"), table_name="delivery_quotes")
    op.drop_table("delivery_quotes")
    with op.batch_alter_table("service_requests") as batch:
        for name, _type in reversed(REQUEST_COLUMNS):
            batch.drop_column(name)
