"""SSH credentials: encrypted at rest, decrypted only into a run's private directory."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.fernet import Fernet

from tests.jobs_support import (  # noqa: F401  (fixtures)
    LOCALHOST_VARS,
    TEST_SECRET_KEY,
    settings,
    wait_for_status,
    workers,
    write_playbook,
)
from tornado_callback.accounts.secrets import SecretsBox, SecretsUnreadable
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.admin.fields import ValidationError
from tornado_callback.config import ConfigError
from tornado_callback.jobs.launch import MSG_USER_INPUT
from tornado_callback.store.models import Credential

pytestmark = pytest.mark.gen_test(timeout=90)

KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAnotarealkey\n-----END OPENSSH PRIVATE KEY-----"


async def stored(services, credential_id):
    async with services.db.session() as session:
        return await session.get(Credential, credential_id)


def create(services, **fields):
    """A credential as the admin API creates it (the only way one is created)."""
    return services.admin.create("credentials", LOCAL_ADMIN, fields)


async def test_secrets_are_stored_encrypted(services):
    created = await create(services, name="deploy", username="deploy", ssh_key_data=KEY_TEXT,
                           become_method="sudo", become_password="hunter2")
    row = await stored(services, created["id"])
    assert b"notarealkey" not in row.ssh_key_data and b"hunter2" not in row.become_password
    fernet = Fernet(TEST_SECRET_KEY)
    assert fernet.decrypt(row.ssh_key_data).decode() == KEY_TEXT
    assert fernet.decrypt(row.become_password).decode() == "hunter2"
    assert row.password is None and row.ask_at_launch is False
    assert "hunter2" not in repr(services.credentials.decrypt(row))


async def test_bad_credentials_are_refused(services):
    with pytest.raises(ValidationError) as refused:
        await create(services, name="x", ssh_key_data="not a key")
    assert refused.value.errors == {"ssh_key_data": ["Not a PEM or OpenSSH private key."]}
    with pytest.raises(ValidationError) as refused:
        await create(services, name="y", become_method="sudo; rm -rf /")
    assert refused.value.errors == {"become_method": ['"sudo; rm -rf /" is not a valid choice.']}


async def test_key_file_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "keys" / "tornado-callback.key"
    token = SecretsBox(None, path).encrypt("s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretsBox(None, path).decrypt(token) == "s3cret"  # a restart reads the same key
    with pytest.raises(SecretsUnreadable):
        SecretsBox(Fernet.generate_key().decode(), path).decrypt(token)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        SecretsBox(None, path).encrypt("x")


async def test_credential_that_asks_at_launch_refuses_callbacks(fetch, seed, services):
    credential = await create(services, name="asks", ssh_key_data=KEY_TEXT, become_password="ASK")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, credential_id=credential["id"])
    response = await fetch(f"/api/v2/job_templates/{world.template_id}/callback/", method="POST",
                           body=json.dumps({"host_config_key": world.key}),
                           headers={"Content-Type": "application/json"})
    assert (response.code, json.loads(response.body)) == (400, {"msg": MSG_USER_INPUT})


@pytest.mark.usefixtures("workers")
async def test_job_gets_the_credential_in_a_private_file_removed_after_the_run(
    fetch, seed, services, tmp_path, out
):
    project = tmp_path / "project"
    seen = out / "seen.json"
    playbook = write_playbook(project, "inspect.yml", """\
    - name: Look at the key file
      ansible.builtin.stat:
        path: "{{ lookup('env', 'ANSIBLE_PRIVATE_KEY_FILE') }}"
      register: key
    - name: Report what the run got
      ansible.builtin.copy:
        dest: "{{ seen }}"
        content: "{{ {'path': key.stat.path, 'mode': key.stat.mode,
                      'key': lookup('file', key.stat.path),
                      'user': lookup('env', 'ANSIBLE_REMOTE_USER'),
                      'become_method': lookup('env', 'ANSIBLE_BECOME_METHOD')} | to_json }}"
""")
    credential = await create(services, name="deploy", username="deploy", ssh_key_data=KEY_TEXT,
                              become_method="sudo", become_password="hunter2")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook,
                       credential_id=credential["id"], extra_vars={"seen": str(seen)})
    response = await fetch(f"/api/v2/job_templates/{world.template_id}/callback/", method="POST",
                           body=json.dumps({"host_config_key": world.key}),
                           headers={"Content-Type": "application/json"})
    job = await wait_for_status(services, json.loads(response.body)["job"])

    # The become password prompt (--ask-become-pass) was answered, or the run would hang.
    assert job.status == "successful", job.result_stdout
    report = json.loads(seen.read_text())
    assert (report["mode"], report["key"], report["user"], report["become_method"]) == (
        "0600", KEY_TEXT, "deploy", "sudo")
    assert not os.path.exists(report["path"])
    assert not os.path.exists(os.path.dirname(os.path.dirname(report["path"])))  # the private dir
    assert "hunter2" not in job.result_stdout
