"""host lookup index covers host_id

Revision ID: 0003_covering_host_lookup
Revises: 0002_inventory_sync
Create Date: 2026-11-30

The callback's host lookup needs only host_id from host_keys: with it in the
index, the lookup no longer reads the host_keys row (SQLite: "USING COVERING
INDEX"), one B-tree descent fewer per callback.
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0003_covering_host_lookup'
down_revision: str | None = '0002_inventory_sync'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def _lookup_index(columns: list[str]) -> None:
    with op.batch_alter_table('host_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_host_keys_lookup')
        batch_op.create_index('ix_host_keys_lookup', columns, unique=False)


def upgrade() -> None:
    _lookup_index(['inventory_id', 'kind', 'value', 'host_id'])


def downgrade() -> None:
    _lookup_index(['inventory_id', 'kind', 'value'])
