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
import types
import urllib.parse
import uuid
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET_KEY, basic_auth
from tests.jobs_support import (  # noqa: F401  (fixtures used by this module)
    LOCALHOST_VARS,
    job_settings,
    wait_for_status,
    workers,
    write_playbook,
)
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.config import parse_plugins_config
from tornado_callback.jobs.playbook_run import UntrustingRunner
from tornado_callback.jobs.sandbox import Sandbox, SandboxRefused
from tornado_callback.store.models import Group, GroupHost

pytestmark = [pytest.mark.gen_test(timeout=120), pytest.mark.usefixtures("workers")]

CALLBACK = "/api/v2/job_templates/{}/callback/"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

SHOW_VARIABLES = """\
    - name: Show what was given
      ansible.builtin.debug:
        msg: "{{ {'role': role, 'env': env, 'nested': nested, 'plain': plain} | to_json }}"
"""


def payloads(out):
    """Launch-time variables that run commands, read the environment and open blocks if templated."""
    pipe = f"{{{{ lookup('pipe', 'touch {out}/pwned-pipe; echo web') }}}}"
    env = "{{ lookup('env', 'TORNADO_CALLBACK_SECRET_KEY') }}"
    block = f"{{% for x in [1] %}}{{{{ lookup('pipe', 'touch {out}/pwned-block') }}}}{{% endfor %}}"
    key = f"{{{{ lookup('pipe', 'touch {out}/pwned-key') }}}}"
    # Strings that YAML would read as other types, or not at all, unless quoted: they stay strings.
    plain = {"no": "no", "empty": "", "hex": "0x10", "bang": "!", "date": "2026-12-01", "null": "~"}
    return {"role": pipe, "env": env, "nested": [block, {key: [pipe]}], "plain": plain}


def assert_given_as_text(job, out):
    assert job.status == "successful", job.result_stdout
    assert not list(out.glob("pwned-*")), "a launch-time template ran on the server"
    assert shown_variables(job) == payloads(out)
    assert TEST_SECRET_KEY not in job.result_stdout


def shown_variables(job):
    """What SHOW_VARIABLES printed: the variables as the playbook saw them."""
    line = next(line for line in job.result_stdout.splitlines() if '"msg":' in line)
    return json.loads(json.loads(line.split('"msg": ', 1)[1]))


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


async def posted_job(fetch, world, body, headers, **kwargs):
    response = await fetch(CALLBACK.format(world.template_id), method="POST", body=body, headers=headers, **kwargs)
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
    questions.append({"question_name": "plain", "variable": "plain", "type": "text", "default": "no"})
    questions.append({"question_name": "nested", "variable": "nested", "type": "multiselect",
                      "choices": [payloads(out)["nested"][0]], "required": True})
    world = await callback_template(seed, tmp_path, survey_enabled=True, survey_spec={"spec": questions})
    given = payloads(out)
    given["nested"] = given["nested"][:1]
    del given["plain"]  # its default, "no", applies: a string, as the survey gave it
    body = json.dumps({"host_config_key": world.key, "extra_vars": given})

    job = await wait_for_status(services, await posted_job(fetch, world, body, JSON))

    assert job.status == "successful", job.result_stdout
    assert not list(out.glob("pwned-*"))
    assert given["role"] in job.result_stdout and given["env"] in job.result_stdout
    assert shown_variables(job)["plain"] == "no"


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


async def test_a_host_cannot_pass_for_another_job(fetch, seed, services, project):
    playbook = write_playbook(project, "ids.yml", """\
    - name: Show the job's own variables
      ansible.builtin.debug:
        msg: "ids={{ awx_job_id }},{{ tower_job_id }},{{ awx_job_template_id }}"
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook,
                       ask_variables_on_launch=True)
    forged = {"awx_job_id": 999, "tower_job_id": 999, "awx_job_template_id": 999}
    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key, "extra_vars": forged}), JSON))
    assert job.status == "successful", job.result_stdout
    assert f'"msg": "ids={job.id},{job.id},{world.template_id}"' in job.result_stdout


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
    credential = await services.admin.create("credentials", LOCAL_ADMIN, {
        "name": "deploy", "username": "deploy", "ssh_key_data": key_text, "password": "ssh-hunter2",
        "become_method": "sudo", "become_password": "become-hunter2"})
    project = tmp_path / "project"
    playbook = write_playbook(project, "artifact.yml", f"""\
    - name: Keep ansible-runner's record of the command
      ansible.builtin.copy:
        src: "{{{{ lookup('env', 'AWX_ISOLATED_DATA_DIR') }}}}/command"
        dest: {out}/command
""")
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook,
                       credential_id=credential["id"])

    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key}), JSON))

    assert job.status == "successful", job.result_stdout
    record = (out / "command").read_text()
    assert json.loads(record)["env"]["ANSIBLE_REMOTE_USER"] == "deploy"
    for secret in ("artifact-key", "ssh-hunter2", "become-hunter2", TEST_SECRET_KEY, "db-password"):
        assert secret not in record, secret
    assert not [name for name in json.loads(record)["env"] if name.startswith("TORNADO_CALLBACK")]


async def test_launch_variables_cannot_set_where_ansible_connects(fetch, seed, services, tmp_path):
    world = await callback_template(seed, tmp_path, ask_variables_on_launch=True)
    given = {"inventory_hostname": "127.0.0.5", "groups": {"all": ["127.0.0.5"]}, "hostvars": {},
             "ansible_host": "127.0.0.5", "role": "web"}
    response = await fetch(CALLBACK.format(world.template_id), method="POST", headers=JSON,
                           body=json.dumps({"host_config_key": world.key, "extra_vars": given}))
    assert response.code == 202, response.body
    job = await wait_for_status(services, json.loads(response.body)["job"], ("pending", "waiting", "running",
                                                                               "successful", "failed", "error"))
    assert job.extra_vars == {"role": "web"}


async def test_variables_nested_past_the_limit_are_refused(fetch, seed, services, tmp_path):
    world = await callback_template(seed, tmp_path, ask_variables_on_launch=True)
    deep: object = "bottom"
    for _ in range(400):
        deep = [deep]
    response = await fetch(CALLBACK.format(world.template_id), method="POST", headers=JSON,
                           body=json.dumps({"host_config_key": world.key, "extra_vars": {"deep": deep}}))
    assert (response.code, json.loads(response.body)) == (
        400, {"msg": "extra_vars nest too deeply (at most 64 levels)"})


async def test_survey_password_answers_are_never_shown(fetch, seed, services, tmp_path, io_loop):
    questions = [{"question_name": "pw", "variable": "pw", "type": "password", "required": True},
                 {"question_name": "colour", "variable": "colour", "type": "text", "required": True}]
    world = await callback_template(seed, tmp_path, survey_enabled=True, survey_spec={"spec": questions})
    await services.accounts.create_user("reader", "pw")
    await services.accounts.grant("reader", "job_template", world.template_id, "read")
    response = await fetch(CALLBACK.format(world.template_id), method="POST", headers=JSON, body=json.dumps(
        {"host_config_key": world.key, "extra_vars": {"pw": "host-given-secret", "colour": "red"}}))
    job_id = json.loads(response.body)["job"]

    detail = await fetch(f"/api/v2/jobs/{job_id}/", headers=basic_auth("reader", "pw"))

    assert json.loads(json.loads(detail.body)["extra_vars"]) == {"pw": "$encrypted$", "colour": "red"}
    job = await wait_for_status(services, job_id)
    assert "host-given-secret" not in job.result_stdout


PROBE_SYSTEM = """\
    - name: Probe what root without capabilities could still do
      ansible.builtin.shell: |
        for f in /proc/sys/kernel/core_pattern /proc/sysrq-trigger; do
          if [ -w "$f" ]; then echo "writable $f"; else echo "read-only $f"; fi
        done
        cat /etc/shadow >/dev/null 2>&1 && echo "read /etc/shadow" || echo "no /etc/shadow"
        rm -f "$AWX_ISOLATED_DATA_DIR/stdout" 2>/dev/null && echo "replaced stdout" || echo "stdout is read-only"
      register: probe
    - name: Report
      ansible.builtin.debug:
        var: probe.stdout_lines
"""


async def test_root_in_the_sandbox_cannot_write_the_kernels_settings_or_read_restricted_files(
    fetch, seed, services, tmp_path
):
    project = tmp_path / "project"
    playbook = write_playbook(project, "probe.yml", PROBE_SYSTEM)
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(project), playbook=playbook)

    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key}), JSON))

    assert job.status == "successful", job.result_stdout
    for line in ("read-only /proc/sys/kernel/core_pattern", "read-only /proc/sysrq-trigger", "no /etc/shadow",
                 "stdout is read-only"):
        assert line in job.result_stdout, job.result_stdout


@pytest.mark.parametrize("project", ["workdir", "runs"])
async def test_a_project_that_would_show_the_server_is_refused(fetch, seed, services, settings, project):
    where = {"workdir": Path.cwd(), "runs": settings.run_dir_path}[project]
    playbook = write_playbook(where, "site.yml", SHOW_VARIABLES)
    world = await seed({"localhost": dict(LOCALHOST_VARS)}, project_dir=str(where), playbook=playbook)

    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key}), JSON))

    assert (job.status, job.job_explanation) == ("error", (
        f"The project directory {where} holds the server's state or lies inside what runs may never see "
        "(the working directory, the run directory, restricted system files): give the template a "
        "directory of its own."))


@pytest.mark.parametrize("project", ["/", "/proc", "/proc/1", "/sys/kernel", "/dev"])
def test_system_paths_are_never_a_project(project, tmp_path):
    sandbox = Sandbox("bwrap")
    with pytest.raises(SandboxRefused, match="is a system path"):
        sandbox.command(["true"], project=Path(project), private_dir=tmp_path, writable=())


async def test_only_a_superuser_sets_a_templates_project_directory(fetch, seed, services, tmp_path):
    world = await callback_template(seed, tmp_path)
    await services.accounts.create_user("tadmin", "pw")
    await services.accounts.grant("tadmin", "job_template", world.template_id, "admin")
    url = f"/api/v2/job_templates/{world.template_id}/"
    tadmin = {**basic_auth("tadmin", "pw"), **JSON}

    refused = await fetch(url, method="PATCH", headers=tadmin, body=json.dumps({"project_dir": "/root"}))
    same = await fetch(url, method="PATCH", headers=tadmin,
                       body=json.dumps({"project_dir": str(tmp_path / "project"), "description": "d"}))

    assert (refused.code, json.loads(refused.body)) == (
        400, {"project_dir": ["Only a superuser may set a template's project directory."]})
    assert same.code == 200, same.body  # sending the same directory back is no change


def test_event_details_are_read_as_untrusted_files(tmp_path):
    """The playbook's side writes job_events/UUID-partial.json; links and odd names are not followed."""
    events = tmp_path / "artifacts" / "7" / "job_events"
    events.mkdir(parents=True)
    secret = tmp_path / "secret.json"
    secret.write_text('{"stolen": true}')
    linked, good = str(uuid.uuid4()), str(uuid.uuid4())
    (events / f"{linked}-partial.json").symlink_to(secret)
    (events / f"{good}-partial.json").write_text('{"task": "ok"}')
    runner = UntrustingRunner.__new__(UntrustingRunner)  # only its reading of event files is under test
    runner.config = types.SimpleNamespace(artifact_dir=str(tmp_path / "artifacts" / "7"))

    assert runner._details(linked) == {}
    assert runner._details(f"../../../{secret.stem}") == {}
    assert runner._details(good) == {"task": "ok"}
    assert secret.exists() and not list(events.iterdir())  # read once, removed; the link's target untouched


@pytest.mark.parametrize("name", ["web9,localhost", "web*", "web"])
async def test_a_callback_runs_on_its_own_host_or_not_at_all(fetch, seed, services, tmp_path, out, name):
    project = tmp_path / "project"
    playbook = write_playbook(project, "mark.yml", f"""\
    - name: Mark the host the play ran on
      ansible.builtin.file:
        path: "{out}/ran-on-{{{{ inventory_hostname }}}}"
        state: touch
""")
    world = await seed({name: dict(LOCALHOST_VARS, ansible_host="127.0.0.3"), "localhost": dict(LOCALHOST_VARS),
                        "web1": dict(LOCALHOST_VARS, ansible_host="127.0.0.4")},
                       project_dir=str(project), playbook=playbook)
    async with services.db.session() as session:  # a group named "web" holding the other hosts
        group = Group(inventory_id=world.inventory_id, name="web")
        session.add(group)
        await session.flush()
        session.add_all([GroupHost(group_id=group.id, host_id=world.hosts[h]) for h in ("localhost", "web1")])
        await session.commit()

    job = await wait_for_status(services, await posted_job(
        fetch, world, json.dumps({"host_config_key": world.key}), JSON, network_interface="127.0.0.3"))

    assert (job.status, job.job_explanation) == ("error", (
        f"The host's name {name!r} would select other hosts as an Ansible limit (it is a group's name, "
        "or holds pattern characters): rename the host."))
    assert not list(out.iterdir())
