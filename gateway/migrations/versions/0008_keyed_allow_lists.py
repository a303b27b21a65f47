"""keyed allow-lists: remove bare SHA-256 NIK lists from saved settings

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02

An eligibility allow-list used to hold bare SHA-256 digests of NIKs
(``eligibility.allow_list_nik_sha256``), which anyone reading the settings can reverse by
hashing a region's NIKs. They cannot be turned into keyed digests (that needs the NIKs), so
this removes them from every saved version of every target's settings, history included,
and leaves the rule in place with the new, empty ``allow_list_nik_hmac``: until the list is
made again with ``gateway identifiers digest``, no one is on it (it fails closed, as a
required rule refuses rather than serving everyone). Each version changed is logged.
The downgrade does not bring the digests back.
"""

import copy
import logging

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

OLD_KEY = "allow_list_nik_sha256"
NEW_KEY = "allow_list_nik_hmac"

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    versions = sa.table("config_versions", sa.column("id", sa.Integer),
                        sa.column("target", sa.String), sa.column("data", sa.JSON))
    bind = op.get_bind()
    for version_id, target, data in bind.execute(
            sa.select(versions.c.id, versions.c.target, versions.c.data)).all():
        eligibility = data.get("eligibility") if isinstance(data, dict) else None
        if not isinstance(eligibility, dict) or OLD_KEY not in eligibility:
            continue
        scrubbed = copy.deepcopy(data)
        removed = scrubbed["eligibility"].pop(OLD_KEY) or []
        scrubbed["eligibility"].setdefault(NEW_KEY, [])
        bind.execute(versions.update().where(versions.c.id == version_id)
                     .values(data=scrubbed))
        if removed:
            log.warning("%s version %s: removed %d bare SHA-256 NIK digest(s) from "
                        "eligibility.%s; list the NIKs again under eligibility.%s with "
                        "`gateway identifiers digest < niks.txt`", target, version_id,
                        len(removed), OLD_KEY, NEW_KEY)


def downgrade() -> None:
    pass
