"""jobs remember which variables were given at launch

Revision ID: 0004_job_launch_vars
Revises: 0003_covering_host_lookup
Create Date: 2026-12-01

A job's extra_vars merge the template's own variables (the admin's
configuration, which Ansible may template) with those given at launch (a
callback's extra_vars, survey answers, a manual launch's extra_vars). The
latter are data from the caller and reach Ansible marked unsafe, so the job
keeps them apart. A job queued before this revision and not yet started
cannot tell its parts apart: all of its variables count as given at launch,
since one of them may be a caller's template waiting to run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004_job_launch_vars'
down_revision: str | None = '0003_covering_host_lookup'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('launch_vars', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    op.execute("UPDATE jobs SET launch_vars = extra_vars WHERE status IN ('pending', 'waiting')")


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('launch_vars')
