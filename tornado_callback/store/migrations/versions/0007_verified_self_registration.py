"""inventories may register verified cloud instances as hosts; hosts say they were

Revision ID: 0007_verified_self_registration
Revises: 0006_cloud_identity_replay
Create Date: 2026-12-10

An inventory with register_verified_hosts gets a host, in its
registration_group, for a verified cloud identity that no host carries
(issue 17). Such a host is marked registered_by_callback: the admin API shows
it, and the per-inventory rate limit counts these hosts by their creation time.
Existing inventories keep it off; existing hosts were not registered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007_verified_self_registration'
down_revision: str | None = '0006_cloud_identity_replay'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('inventories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('register_verified_hosts', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('registration_group', sa.String(length=512), nullable=False,
                                      server_default='registered_by_callback'))
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registered_by_callback', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('registered_by_callback')
    with op.batch_alter_table('inventories', schema=None) as batch_op:
        batch_op.drop_column('registration_group')
        batch_op.drop_column('register_verified_hosts')
