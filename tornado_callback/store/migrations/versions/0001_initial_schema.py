"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('credentials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('username', sa.String(length=512), nullable=False),
    sa.Column('ssh_key_data', sa.LargeBinary(), nullable=True),
    sa.Column('ssh_key_unlock', sa.LargeBinary(), nullable=True),
    sa.Column('password', sa.LargeBinary(), nullable=True),
    sa.Column('become_method', sa.String(length=32), nullable=False),
    sa.Column('become_username', sa.String(length=512), nullable=False),
    sa.Column('become_password', sa.LargeBinary(), nullable=True),
    sa.Column('ask_at_launch', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credentials')),
    sa.UniqueConstraint('name', name=op.f('uq_credentials_name'))
    )
    op.create_table('index_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=128), nullable=False),
    sa.Column('built', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_index_state'))
    )
    op.create_table('inventories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inventories')),
    sa.UniqueConstraint('name', name=op.f('uq_inventories_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('is_superuser', sa.Boolean(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('first_name', sa.String(length=150), nullable=False),
    sa.Column('last_name', sa.String(length=150), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inventory_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inventory_id'], ['inventories.id'], name=op.f('fk_groups_inventory_id_inventories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
    sa.UniqueConstraint('inventory_id', 'name', name=op.f('uq_groups_inventory_id_name'))
    )
    op.create_table('hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inventory_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inventory_id'], ['inventories.id'], name=op.f('fk_hosts_inventory_id_inventories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts')),
    sa.UniqueConstraint('inventory_id', 'name', name=op.f('uq_hosts_inventory_id_name'))
    )
    op.create_table('inventory_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inventory_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=False),
    sa.Column('update_on_launch', sa.Boolean(), nullable=False),
    sa.Column('update_cache_timeout', sa.Integer(), nullable=False),
    sa.Column('overwrite', sa.Boolean(), nullable=False),
    sa.Column('overwrite_vars', sa.Boolean(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('last_update_id', sa.Integer(), nullable=True),
    sa.Column('last_successful_update', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inventory_id'], ['inventories.id'], name=op.f('fk_inventory_sources_inventory_id_inventories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inventory_sources')),
    sa.UniqueConstraint('inventory_id', 'name', name=op.f('uq_inventory_sources_inventory_id_name'))
    )
    op.create_table('job_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('inventory_id', sa.Integer(), nullable=True),
    sa.Column('project_dir', sa.Text(), nullable=False),
    sa.Column('playbook', sa.Text(), nullable=False),
    sa.Column('credential_id', sa.Integer(), nullable=True),
    sa.Column('extra_vars', sa.JSON(), nullable=False),
    sa.Column('limit', sa.Text(), nullable=False),
    sa.Column('forks', sa.Integer(), nullable=False),
    sa.Column('verbosity', sa.Integer(), nullable=False),
    sa.Column('job_tags', sa.Text(), nullable=False),
    sa.Column('skip_tags', sa.Text(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('ask_variables_on_launch', sa.Boolean(), nullable=False),
    sa.Column('ask_limit_on_launch', sa.Boolean(), nullable=False),
    sa.Column('survey_enabled', sa.Boolean(), nullable=False),
    sa.Column('survey_spec', sa.JSON(), nullable=False),
    sa.Column('host_config_key', sa.String(length=1024), nullable=False),
    sa.Column('allow_simultaneous', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credential_id'], ['credentials.id'], name=op.f('fk_job_templates_credential_id_credentials'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['inventory_id'], ['inventories.id'], name=op.f('fk_job_templates_inventory_id_inventories'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_templates')),
    sa.UniqueConstraint('name', name=op.f('uq_job_templates_name'))
    )
    with op.batch_alter_table('job_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_templates_inventory_id'), ['inventory_id'], unique=False)

    op.create_table('role_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_role_assignments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_assignments')),
    sa.UniqueConstraint('user_id', 'resource_type', 'resource_id', 'role', name=op.f('uq_role_assignments_user_id_resource_type_resource_id_role'))
    )
    with op.batch_alter_table('role_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_role_assignments_user_id'), ['user_id'], unique=False)

    op.create_table('tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=512), nullable=False),
    sa.Column('expires', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_tokens_token_hash'))
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('group_children',
    sa.Column('parent_id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['groups.id'], name=op.f('fk_group_children_child_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['groups.id'], name=op.f('fk_group_children_parent_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('parent_id', 'child_id', name=op.f('pk_group_children'))
    )
    with op.batch_alter_table('group_children', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_children_child_id'), ['child_id'], unique=False)

    op.create_table('group_hosts',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_hosts_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_group_hosts_host_id_hosts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'host_id', name=op.f('pk_group_hosts'))
    )
    with op.batch_alter_table('group_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_hosts_host_id'), ['host_id'], unique=False)

    op.create_table('host_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inventory_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=512), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_host_keys_host_id_hosts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inventory_id'], ['inventories.id'], name=op.f('fk_host_keys_inventory_id_inventories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host_keys')),
    sa.UniqueConstraint('host_id', 'kind', 'value', name=op.f('uq_host_keys_host_id_kind_value'))
    )
    with op.batch_alter_table('host_keys', schema=None) as batch_op:
        batch_op.create_index('ix_host_keys_lookup', ['inventory_id', 'kind', 'value'], unique=False)

    op.create_table('inventory_updates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inventory_source_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('launch_type', sa.String(length=20), nullable=False),
    sa.Column('started', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hosts_added', sa.Integer(), nullable=False),
    sa.Column('hosts_updated', sa.Integer(), nullable=False),
    sa.Column('hosts_removed', sa.Integer(), nullable=False),
    sa.Column('result_stdout', sa.Text(), nullable=False),
    sa.Column('job_explanation', sa.Text(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inventory_source_id'], ['inventory_sources.id'], name=op.f('fk_inventory_updates_inventory_source_id_inventory_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inventory_updates'))
    )
    with op.batch_alter_table('inventory_updates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inventory_updates_inventory_source_id'), ['inventory_source_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_template_id', sa.Integer(), nullable=True),
    sa.Column('inventory_id', sa.Integer(), nullable=True),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('launch_type', sa.String(length=20), nullable=False),
    sa.Column('limit', sa.Text(), nullable=False),
    sa.Column('extra_vars', sa.JSON(), nullable=False),
    sa.Column('resolved_by', sa.String(length=128), nullable=False),
    sa.Column('launched_by_id', sa.Integer(), nullable=True),
    sa.Column('started', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed', sa.Boolean(), nullable=False),
    sa.Column('job_explanation', sa.Text(), nullable=False),
    sa.Column('result_stdout', sa.Text(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('worker_id', sa.String(length=128), nullable=False),
    sa.Column('lease_expires', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_jobs_host_id_hosts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['inventory_id'], ['inventories.id'], name=op.f('fk_jobs_inventory_id_inventories'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_template_id'], ['job_templates.id'], name=op.f('fk_jobs_job_template_id_job_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['launched_by_id'], ['users.id'], name=op.f('fk_jobs_launched_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_job_template_id'), ['job_template_id'], unique=False)
        batch_op.create_index('ix_jobs_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('uq_jobs_active_callback', ['job_template_id', 'host_id'], unique=True, sqlite_where=sa.text("host_id IS NOT NULL AND status IN ('pending', 'waiting', 'running')"), postgresql_where=sa.text("host_id IS NOT NULL AND status IN ('pending', 'waiting', 'running')"))

    op.create_table('callback_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('job_template_id', sa.Integer(), nullable=True),
    sa.Column('peer_address', sa.String(length=64), nullable=False),
    sa.Column('client_addresses', sa.JSON(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('msg', sa.Text(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('host_name', sa.String(length=512), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('resolved_by', sa.String(length=128), nullable=False),
    sa.Column('trace', sa.JSON(), nullable=False),
    sa.Column('elapsed_ms', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_callback_attempts_host_id_hosts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_callback_attempts_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_template_id'], ['job_templates.id'], name=op.f('fk_callback_attempts_job_template_id_job_templates'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_attempts'))
    )
    with op.batch_alter_table('callback_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_callback_attempts_template_created', ['job_template_id', 'id'], unique=False)

    op.create_table('job_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('counter', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=100), nullable=False),
    sa.Column('host_name', sa.String(length=512), nullable=False),
    sa.Column('task', sa.Text(), nullable=False),
    sa.Column('stdout', sa.Text(), nullable=False),
    sa.Column('event_data', sa.JSON(), nullable=False),
    sa.Column('failed', sa.Boolean(), nullable=False),
    sa.Column('changed', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_events_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_events')),
    sa.UniqueConstraint('job_id', 'counter', name=op.f('uq_job_events_job_id_counter'))
    )


def downgrade() -> None:
    op.drop_table('job_events')
    with op.batch_alter_table('callback_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_callback_attempts_template_created')

    op.drop_table('callback_attempts')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_jobs_active_callback', sqlite_where=sa.text("host_id IS NOT NULL AND status IN ('pending', 'waiting', 'running')"), postgresql_where=sa.text("host_id IS NOT NULL AND status IN ('pending', 'waiting', 'running')"))
        batch_op.drop_index('ix_jobs_status_id')
        batch_op.drop_index(batch_op.f('ix_jobs_job_template_id'))

    op.drop_table('jobs')
    with op.batch_alter_table('inventory_updates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inventory_updates_inventory_source_id'))

    op.drop_table('inventory_updates')
    with op.batch_alter_table('host_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_host_keys_lookup')

    op.drop_table('host_keys')
    with op.batch_alter_table('group_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_hosts_host_id'))

    op.drop_table('group_hosts')
    with op.batch_alter_table('group_children', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_children_child_id'))

    op.drop_table('group_children')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tokens_user_id'))

    op.drop_table('tokens')
    with op.batch_alter_table('role_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_role_assignments_user_id'))

    op.drop_table('role_assignments')
    with op.batch_alter_table('job_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_templates_inventory_id'))

    op.drop_table('job_templates')
    op.drop_table('inventory_sources')
    op.drop_table('hosts')
    op.drop_table('groups')
    op.drop_table('users')
    op.drop_table('inventories')
    op.drop_table('index_state')
    op.drop_table('credentials')
