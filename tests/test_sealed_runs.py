"""Sealed runs: what a host or an admin sends never runs on the server, and playbooks see none of its state.

The attacks are the ones a fleet member (who holds the template's key) and a
template admin (no superuser) can make. Every side effect an attack would
have is aimed at the test's shown directory, the one place outside the
sandbox the test can look, so that each test fails if the attack works.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.parse

import pytest
from conftest import TEST_SECRET_KEY, basic_auth
from jobs_support import (  # noqa: F401  (fixtures used by this module)
    LOCALHOST_VARS,
    job_settings,
    wait_for_status,
    workers,
    write_playbook,
)

from tornado_callback.config import parse_plugins_config

pytestmark = [pytest.mark.gen_test(timeout=120), pytest.mark.usefixtures("workers")]

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

SHOW_VARIABLES = """\
    - name: Show what was given
      ansible.builtin.debug:
        msg: "{{ {'role': role, 'env': env, 'nested': nested} | to_json }}"
"""


def payloads(out):
    """Launch-time variables that run commands, read the environment and open blocks if templated."""
    pipe = f"{{{{ lookup('pipe', 'touch {out}/pwned-pipe; echo web') }}}}"
    env = "{{ lookup('env', 'TORNADO_CALLBACK_SECRET_KEY') }}"
    block = f"{{% for x in [1] %}}{{{{ lookup('pipe', 'touch {out}/pwned-block') }}}}{{% endfor %}}"
    key = f"{{{{ lookup('pipe', 'touch {out}/pwned-key') }}}}"
    return {"role": pipe, "env": env, "nested": [block, {key: [pipe]}]}


def assert_given_as_text(job, out):
    assert job.status == "successful", job.result_stdout
    assert not list(out.glob("pwned-*")), "a launch-time template ran on the server"
    expected = payloads(out)
    shown_json = next(line for line in job.result_stdout.splitlines() if '"msg":' in line)
    assert json.loads(json.loads(shown_json.split('"msg": ', 1)[1])) == expected
    assert TEST_SECRET_KEY not in job.result_stdout


@pytest.fixture
def admin(io_loop, services):
    io_loop.run_sync(lambda: services.accounts.create_user("root", "pw", superuser=True))
    return basic_auth("root", "pw")


@pytest.fixture
def server_env(monkeypatch):
    """The server's own secrets in its environment, as a deployment gives them."""
    monkeypatch.setenv("TORNADO_CALLBACK_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("TORNADO_CALLBACK_DATABASE_URL", "postgresql://callback:db-password@db/callback")


async def callback_template(seed, tmp_path, **template):
    project = tmp_path / "project"
    playbook = write_playbook(project, "show.yml", SHOW_VARIABLES)
    return await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook,
                      **template)


async def posted_job(fetch, world, body, headers):
    response = await fetch(CALLBACK.format(world.template_id), method="POST", body=body, headers=headers)
    assert response.code == 202, response.body
    return json.loads(response.body)["job"]


@pytest.mark.usefixtures("server_env")
@pytest.mark.parametrize("spelling", ["object", "json-string", "yaml-string", "form"])
async def test_callback_variables_arrive_as_text(fetch, seed, services, tmp_path, out, spelling):
    world = await callback_template(seed, tmp_path, ask_variables_on_launch=True)
    given = payloads(out)
    if spelling == "form":
        body, headers = urllib.parse.urlencode({"host_config_key": world.key, "extra_vars": json.dumps(given)}), FORM
    else:
        extra_vars = {"object": given, "json-string": json.dumps(given),
                      "yaml-string": yaml_flow(given)}[spelling]
        body, headers = json.dumps({"host_config_key": world.key, "extra_vars": extra_vars}), JSON

    job = await wait_for_status(services, await posted_job(fetch, world, body, headers))

    assert_given_as_text(job, out)


def yaml_flow(variables):
    """The PowerShell client's spelling: YAML, not JSON (single-quoted scalars)."""
    import yaml

    text = yaml.safe_dump(variables, default_flow_style=False)
    assert not text.lstrip().startswith("{")
    return text


async def test_survey_answers_arrive_as_text(fetch, seed, services, tmp_path, out):
    questions = [{"question_name": name, "variable": name, "type": "text", "required": True}
                 for name in ("role", "env")]
    questions.append({"question_name": "nested", "variable": "nested", "type": "multiselect",
                      "choices": [payloads(out)["nested"][0]], "required": True})
    world = await callback_template(seed, tmp_path, survey_enabled=True, survey_spec={"spec": questions})
    given = payloads(out)
    given["nested"] = given["nested"][:1]
    body = json.dumps({"host_config_key": world.key, "extra_vars": given})

    job = await wait_for_status(services, await posted_job(fetch, world, body, JSON))

    assert job.status == "successful", job.result_stdout
    assert not list(out.glob("pwned-*"))
    assert given["role"] in job.result_stdout and given["env"] in job.result_stdout


async def test_manual_launch_variables_arrive_as_text(fetch, seed, services, tmp_path, out, admin):
    world = await callback_template(seed, tmp_path, ask_variables_on_launch=True)
    response = await fetch(f"/api/v2/job_templates/{world.template_id}/launch/", method="POST",
                           body=json.dumps({"extra_vars": payloads(out)}), headers={**admin, **JSON})
    assert response.code == 201, response.body

    job = await wait_for_status(services, json.loads(response.body)["job"])

    assert_given_as_text(job, out)


async def test_the_templates_own_variables_still_template(fetch, seed, services, tmp_path, out):
    project = tmp_path / "project"
    playbook = write_playbook(project, "show.yml", """\
    - name: Show the configured value
      ansible.builtin.debug:
        msg: "configured={{ configured }}"
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook,
                       extra_vars={"configured": "{{ 6 * 7 }}"})
    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key}), JSON))
    assert job.status == "successful", job.result_stdout
    assert '"msg": "configured=42"' in job.result_stdout


@pytest.fixture
def settings(database_url, tmp_path, monkeypatch):
    """A server whose state lies inside the project, the worst place an admin could put it:
    the project is the test's directory, which holds the SQLite database, the key file,
    plugins.toml, the runs' directories and, inside, the server's working directory."""
    plugins = tmp_path / "plugins.toml"
    plugins.write_text("# plugins-toml-marker\n")
    key_file = tmp_path / "tornado-callback.key"
    key_file.write_text(TEST_SECRET_KEY)
    key_file.chmod(0o600)
    workdir = tmp_path / "srv"
    workdir.mkdir()
    (workdir / "server-notes.txt").write_text("notes")
    monkeypatch.chdir(workdir)
    return job_settings(database_url, parse_plugins_config({}, plugins), tmp_path, secret_key_file=str(key_file))


PEEK = """\
    - name: Look for the server's secrets
      ansible.builtin.shell: |
        echo "env=[$(env | grep -c TORNADO_CALLBACK)] [{{ lookup('env', 'TORNADO_CALLBACK_SECRET_KEY') }}]"
        for f in STATE; do echo "file $f: [$(cat "$f" 2>/dev/null | base64 -w0)]"; done
        echo "workdir: [$(ls -A WORKDIR 2>&1 | tr '\\n' ' ')]"
        echo "runs: [$(ls -A RUNS 2>&1 | tr '\\n' ' ')]"
        echo PEEKED-$(id -u)
      register: peek
    - name: Report
      ansible.builtin.debug:
        var: peek.stdout_lines
"""


@pytest.mark.usefixtures("server_env")
async def test_playbooks_see_none_of_the_servers_state(fetch, seed, services, settings, tmp_path):
    state = [settings.key_file_path, settings.plugins.path, *([settings.sqlite_path] if settings.sqlite_path else [])]
    playbook = write_playbook(tmp_path, "peek.yml", PEEK.replace("STATE", " ".join(map(str, state)))
                              .replace("WORKDIR", str(tmp_path / "srv")).replace("RUNS", str(settings.run_dir_path)))
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(tmp_path), playbook=playbook)

    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key}), JSON))

    assert job.status == "successful", job.result_stdout
    assert "PEEKED-" in job.result_stdout, job.result_stdout  # the probe ran
    assert "env=[0] []" in job.result_stdout, job.result_stdout
    for path in state:
        assert f"file {path}: []" in job.result_stdout, job.result_stdout
    assert "workdir: []" in job.result_stdout, job.result_stdout
    for text in (TEST_SECRET_KEY, "db-password", "plugins-toml-marker", "SQLite format 3", "notes"):
        encoded = base64.b64encode(text.encode()).decode()[:16]
        assert text not in job.result_stdout and encoded not in job.result_stdout, text
    runs = next(line for line in job.result_stdout.splitlines() if "runs: [" in line)
    assert runs.count("job-") == 1, runs  # its own directory only


@pytest.mark.usefixtures("server_env")
async def test_a_template_admin_cannot_read_the_key_through_the_interpreter(
    fetch, seed, services, settings, tmp_path, out
):
    project = tmp_path / "project"
    playbook = write_playbook(project, "ping.yml", """\
    - name: Ping
      ansible.builtin.ping:
""")
    world = await seed({"localhost": {"ansible_host": "127.0.0.1"}}, project_dir=str(project), playbook=playbook)
    await services.accounts.create_user("tadmin", "pw")
    await services.accounts.grant("tadmin", "job_template", world.template_id, "admin")
    tadmin = {**basic_auth("tadmin", "pw"), **JSON}
    # The lookup runs when Ansible templates the interpreter; what it reads lands in the shown directory.
    steal = (f"cat {settings.key_file_path} {settings.sqlite_path or ''} > {out}/stolen 2>&1; "
             f"env >> {out}/stolen; echo {sys.executable}")
    patched = await fetch(f"/api/v2/job_templates/{world.template_id}/", method="PATCH", headers=tadmin,
                          body=json.dumps({"extra_vars": {
                              "ansible_connection": "local",
                              "ansible_python_interpreter": f"{{{{ lookup('pipe', '{steal}') }}}}"}}))
    assert patched.code == 200, patched.body
    launched = await fetch(f"/api/v2/job_templates/{world.template_id}/launch/", method="POST",
                           body=b"{}", headers=tadmin)
    assert launched.code == 201, launched.body

    job = await wait_for_status(services, json.loads(launched.body)["job"])

    assert job.status == "successful", job.result_stdout  # the admin's template ran, as AWX lets it
    stolen = (out / "stolen").read_text()
    assert "PATH=" in stolen  # the lookup ran and wrote here
    for text in (TEST_SECRET_KEY, "SQLite format 3", "TORNADO_CALLBACK_"):
        assert text not in stolen, stolen


@pytest.mark.usefixtures("server_env")
async def test_runner_command_artifact_holds_no_secret(fetch, seed, services, tmp_path, out):
    key_text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAartifact-key\n-----END OPENSSH PRIVATE KEY-----"
    credential = await services.credentials.create(
        "deploy", username="deploy", ssh_key_data=key_text, password="ssh-hunter2",
        become_method="sudo", become_password="become-hunter2")
    project = tmp_path / "project"
    playbook = write_playbook(project, "artifact.yml", f"""\
    - name: Keep ansible-runner's record of the command
      ansible.builtin.copy:
        src: "{{{{ lookup('env', 'AWX_ISOLATED_DATA_DIR') }}}}/command"
        dest: {out}/command
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook,
                       credential_id=credential.id)

    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key}), JSON))

    assert job.status == "successful", job.result_stdout
    record = (out / "command").read_text()
    assert json.loads(record)["env"]["ANSIBLE_REMOTE_USER"] == "deploy"
    for secret in ("artifact-key", "ssh-hunter2", "become-hunter2", TEST_SECRET_KEY, "db-password"):
        assert secret not in record, secret
    assert not [name for name in json.loads(record)["env"] if name.startswith("TORNADO_CALLBACK")]
