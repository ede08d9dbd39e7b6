"""``serve --demo``: a localhost inventory, a template and an admin, ready to call."""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from tornado_callback.accounts.service import LOCAL_ADMIN, AccountError
from tornado_callback.admin.catalog import new_host_config_key
from tornado_callback.errors import NotFound
from tornado_callback.services import Services

DEMO_INVENTORY = "Demo Inventory"
DEMO_TEMPLATE = "Demo Job Template"
DEMO_USER = "admin"
DEMO_PROJECT = Path(__file__).parent / "project"


@dataclass(frozen=True)
class Demo:
    template_id: int
    host_config_key: str
    username: str
    password: str


async def seed_demo(services: Services) -> Demo:
    """Create the demo objects once, through the admin API's service as the command line does;
    later runs reuse them and reset the admin's password."""
    admin = services.admin
    inventory = await admin.create_or_update("inventories", LOCAL_ADMIN, {"name": DEMO_INVENTORY})
    await admin.create_or_update("hosts", LOCAL_ADMIN, {
        "inventory": inventory["id"],
        "name": "localhost",
        "variables": {
            "ansible_connection": "local",
            "ansible_host": "127.0.0.1",
            # The Python running ansible-playbook: interpreter discovery may find
            # one without ansible's needs (or a broken pyenv shim).
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        },
    })
    try:
        template = await admin.named("job_templates", LOCAL_ADMIN, DEMO_TEMPLATE)
    except NotFound:
        template = await admin.create("job_templates", LOCAL_ADMIN, {
            "name": DEMO_TEMPLATE,
            "inventory": inventory["id"],
            "playbook": "demo.yml",
            "project_dir": str(DEMO_PROJECT),
            "host_config_key": new_host_config_key(),
            "ask_variables_on_launch": True,
        })
    password = secrets.token_urlsafe(12)
    try:
        await services.accounts.create_user(DEMO_USER, password, superuser=True)
    except AccountError:
        await services.accounts.set_password(DEMO_USER, password)
    return Demo(template["id"], template["host_config_key"], DEMO_USER, password)


def demo_banner(demo: Demo, base_url: str, unsandboxed: str = "") -> str:
    """What to paste; ``unsandboxed``, if given, is why the demo's jobs run without the sandbox."""
    callback = f"{base_url}/api/v2/job_templates/{demo.template_id}/callback/"
    body = shlex.quote(f'{{"host_config_key": "{demo.host_config_key}"}}')
    scheme, _, rest = callback.partition("://")
    admin_url = f"{scheme}://{demo.username}:{demo.password}@{rest}"
    return "\n".join([
        "tornado-callback demo is ready.",
        f"  template {demo.template_id} {DEMO_TEMPLATE!r}, inventory {DEMO_INVENTORY!r}, "
        "host localhost (127.0.0.1)",
        f"  admin user {demo.username!r}, password {demo.password!r}",
        "",
        "Call back as the host (answers 202 and queues a job):",
        f"  curl -s -i -H 'Content-Type: application/json' -d {body} {callback}",
        "or",
        f"  wget -O /dev/null --post-data={body} --header=Content-Type:application/json {callback}",
        "",
        "See which host would match, and why (as the admin):",
        f"  curl {admin_url}",
        "",
        "See what the job did: tornado-callback jobs show N",
        "",
        *([f"NOTE: the demo's jobs run WITHOUT the sandbox, because {unsandboxed}.",
           "  Outside --demo, serve refuses to run jobs like this.", ""] if unsandboxed else []),
    ])
