"""callback jobs of one template and launch may share one ansible-playbook run

Revision ID: 0008_coalesced_runs
Revises: 0007_verified_self_registration
Create Date: 2026-12-02

A worker runs pending callback jobs of the same template, inventory and
variables as one ansible-playbook (issue 18); each job records the run it
shared (run_id) and how many jobs shared it. Templates may opt out
(allow_coalesced_runs).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008_coalesced_runs'
down_revision: str | None = '0007_verified_self_registration'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job_templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_coalesced_runs', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('run_job_count', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('run_job_count')
        batch_op.drop_column('run_id')
    with op.batch_alter_table('job_templates', schema=None) as batch_op:
        batch_op.drop_column('allow_coalesced_runs')
