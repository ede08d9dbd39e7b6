"""inventory sync: which source listed a host or group

Revision ID: 0002_inventory_sync
Revises: 0001
Create Date: 2026-11-26

An overwrite removes what *its* source no longer lists, never hosts added by
hand or by another source (AWX's rule); so hosts and groups remember the
source that last listed them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002_inventory_sync'
down_revision: str | None = '0001'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

TABLES = ('hosts', 'groups')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('inventory_source_id', sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                op.f(f'fk_{table}_inventory_source_id_inventory_sources'),
                'inventory_sources', ['inventory_source_id'], ['id'], ondelete='SET NULL',
            )
            batch_op.create_index(op.f(f'ix_{table}_inventory_source_id'), ['inventory_source_id'])


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(op.f(f'ix_{table}_inventory_source_id'))
            batch_op.drop_constraint(
                op.f(f'fk_{table}_inventory_source_id_inventory_sources'), type_='foreignkey'
            )
            batch_op.drop_column('inventory_source_id')
