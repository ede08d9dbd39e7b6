"""The benchmark's world: N hosts, the templates they call back to, and an admin token.

Built through the same services the CLI uses (``inventory import`` from an
ansible-inventory listing, ``template create``, ``user create``, ``token
create``), in a fresh database. Each host also carries an EC2 instance id, and
``sign_identities`` makes the signed AWS identity documents that prove them.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.cli.inventory import import_inventory
from tornado_callback.config import Settings, load_plugins_config, normalise_database_url
from tornado_callback.services import Services

PLUGINS = Path(__file__).with_name("plugins.toml")
# The identity tests' stand-in for AWS (it needs no pytest) signs the bench's documents
# too; tests/ is not an installed package, so the checkout it is in goes on the path.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from tests.identity.cloud import AwsSigner  # noqa: E402

HOST_KEY = "bench-host-config-key"
ADMIN = "bench-admin"


def host_address(index: int) -> str:
    """Host ``index``'s ansible_host: 10.a.b.c from index + 1 (load.lua computes the same)."""
    n = index + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def instance_id(index: int) -> str:
    """Host ``index``'s EC2 instance id, as AWS writes them (``i-`` and 17 hex digits)."""
    return f"i-{index:017x}"


def host_variables(hosts: int) -> dict[str, dict[str, Any]]:
    """Host variables by host name: the bench's N hosts."""
    return {f"node{i:06d}": {"ansible_host": host_address(i), "instance_id": instance_id(i)}
            for i in range(hosts)}


@dataclass(frozen=True)
class World:
    database_url: str
    hosts: int
    first_template_id: int
    templates: int
    token: str
    seconds: float


@dataclass(frozen=True)
class Identities:
    """What the verified POST row needs: a callback body per host, carrying its signed AWS
    identity (host i's on line i + 1), and a plugins.toml whose cloud_metadata trusts the signer."""

    bodies: Path
    plugins: Path
    seconds: float


def sign_identities(directory: Path, hosts: int) -> Identities:
    """``hosts`` bodies in the ``signature`` form, each with the host's own nonce: the first
    verified callback of an instance binds it to that nonce, later ones bring the same."""
    started = time.perf_counter()
    signer = AwsSigner()
    certificate = directory / "aws-certificate.pem"
    certificate.write_bytes(signer.pem)
    plugins = directory / "plugins.toml"
    # json.dumps writes a TOML basic string (same escapes) for any path.
    plugins.write_text(f"{PLUGINS.read_text()}\n[resolvers.cloud_metadata]\n"
                       f"aws_certificates = [{json.dumps(str(certificate))}]\n")
    bodies = directory / "bodies.jsonl"
    with bodies.open("w") as out:
        for i in range(hosts):
            document = signer.document(instance_id(i), privateIp=host_address(i))
            identity = signer.identity(document, nonce=f"bench-nonce-of-host-{i:08d}")
            out.write(json.dumps({"host_config_key": HOST_KEY, "cloud_identity": identity}) + "\n")
    return Identities(bodies, plugins, time.perf_counter() - started)


async def import_hosts(services: Services, name: str, hostvars: dict[str, dict[str, Any]]) -> int:
    """The inventory ``name`` of these hosts (variables by host name), imported from an
    ansible-inventory listing as ``inventory import`` does; its id."""
    listed = {"_meta": {"hostvars": hostvars}, "all": {"hosts": sorted(hostvars)}}
    update = await import_inventory(services, name, "-", json.dumps(listed))
    if update.status != "successful" or update.hosts_added != len(hostvars):
        raise RuntimeError(f"inventory import failed: {update.status} {update.job_explanation}")
    return (await services.admin.named("inventories", LOCAL_ADMIN, name))["id"]


async def admin_token(services: Services) -> str:
    """A token of a new superuser, ADMIN."""
    await services.accounts.create_user(ADMIN, None, superuser=True)
    return await services.accounts.create_token(ADMIN, "benchmark")


def settings_for(database_url: str) -> Settings:
    return Settings(database_url=normalise_database_url(database_url),
                    plugins=load_plugins_config(PLUGINS), workers=0)


async def build_world(database_url: str, hosts: int, templates: int) -> World:
    """``templates`` templates on one inventory of ``hosts`` hosts, with consecutive ids.

    Each (template, host) pair may have one pending callback job: many templates
    let a small inventory answer many POSTs with 202 (see bench/NOTES.md).
    """
    if hosts > 2**24 - 2:
        raise ValueError("at most 16,777,214 hosts fit in 10.0.0.0/8")
    started = time.perf_counter()
    services = await Services.start(settings_for(database_url))
    try:
        inventory = await import_hosts(services, "bench", host_variables(hosts))
        ids = [
            (await services.admin.create("job_templates", LOCAL_ADMIN, {
                "name": f"bench-{t}", "inventory": inventory, "playbook": "ping.yml",
                "host_config_key": HOST_KEY}))["id"]
            for t in range(templates)
        ]
        if ids != list(range(ids[0], ids[0] + templates)):
            raise RuntimeError(f"template ids are not consecutive: {ids[:5]}...")
        token = await admin_token(services)
    finally:
        await services.close()
    return World(database_url, hosts, ids[0], templates, token, time.perf_counter() - started)
