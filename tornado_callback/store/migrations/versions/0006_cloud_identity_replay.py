"""what makes a signed cloud identity usable once: spent GCP tokens, AWS nonce bindings

Revision ID: 0006_cloud_identity_replay
Revises: 0005_auth_failures
Create Date: 2026-12-09

A GCP identity token is accepted once: its digest is kept until it expires.
An AWS identity document never expires: an instance is bound, on its first
verified callback, to the digest of its client's nonce (issue 17).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006_cloud_identity_replay'
down_revision: str | None = '0005_auth_failures'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cloud_token_uses',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_cloud_token_uses'))
    )
    with op.batch_alter_table('cloud_token_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cloud_token_uses_expires_at'), ['expires_at'], unique=False)

    op.create_table('cloud_identity_bindings',
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('instance_id', sa.String(length=256), nullable=False),
    sa.Column('nonce_digest', sa.String(length=64), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'instance_id', name=op.f('pk_cloud_identity_bindings'))
    )


def downgrade() -> None:
    op.drop_table('cloud_identity_bindings')
    op.drop_table('cloud_token_uses')
