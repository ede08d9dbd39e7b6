"""failures that rate limits count, shared by every process

Revision ID: 0005_auth_failures
Revises: 0004_job_launch_vars
Create Date: 2026-12-02

Wrong host_config_keys and passwords were counted in each process's memory:
`--processes 2` doubled the budget, and servers sharing a database had one
each. Each failure is now a row, kept for as long as a limit counts it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005_auth_failures'
down_revision: str | None = '0004_job_launch_vars'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('auth_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('failed_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_failures'))
    )
    with op.batch_alter_table('auth_failures', schema=None) as batch_op:
        batch_op.create_index('ix_auth_failures_subject', ['subject', 'failed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_auth_failures_failed_at'), ['failed_at'], unique=False)


def downgrade() -> None:
    op.drop_table('auth_failures')
