"""deploy/nginx/tornado-callback.conf run by the real nginx, in front of the real server with
deploy/plugins.toml: a callback through it is matched to the host behind the proxy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import OFFLINE_RESOLVERS
from tests.helpers import REPO, free_port
from tests.jobs_support import job_row
from tests.realservers import nginx
from tornado_callback.config import parse_plugins_config

pytestmark = pytest.mark.gen_test(timeout=60)

SITE = REPO / "deploy" / "nginx" / "tornado-callback.conf"


@pytest.fixture
def plugins_config():
    """deploy/plugins.toml, with the DNS resolvers off as in every test."""
    deployed = tomllib.loads((REPO / "deploy" / "plugins.toml").read_text())
    return parse_plugins_config({"resolvers": {**OFFLINE_RESOLVERS, **deployed["resolvers"]}})


def site_for_test(port: int, upstream_port: int, cert: Path, key: Path) -> str:
    """The site file as shipped, but for loopback: its port, the test's certificate, the test
    server as its one node. IPv6 is left out (tests use 127.0.0.1 only)."""
    text = SITE.read_text()
    for shipped, here in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("/etc/ssl/certs/callback.example.com.pem", str(cert)),
        ("/etc/ssl/private/callback.example.com.key", str(key)),
        ("server 127.0.0.1:8052;", f"server 127.0.0.1:{upstream_port};"),
    ):
        assert shipped in text, f"{SITE} no longer says {shipped!r}"
        text = text.replace(shipped, here)
    return text


def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def curl_callback(url: str, cert: Path, source: str, key: str, *headers: str) -> tuple[int, dict]:
    """curl over TLS (checking nginx's certificate) from ``source``; the status and the JSON body."""
    done = subprocess.run(
        ["curl", "-s", "--cacert", str(cert), "--interface", source, "-w", "\n%{http_code}",
         "-H", "Content-Type: application/json", *(arg for h in headers for arg in ("-H", h)),
         "-d", json.dumps({"host_config_key": key}), url],
        capture_output=True, text=True, timeout=30,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), json.loads(body) if body else {}


async def test_a_callback_through_the_shipped_site_matches_the_host_behind_the_proxy(
    seed, services, http_server, http_port, tmp_path
):
    world = await seed({"web9": {"ansible_host": "127.0.0.9"}, "web10": {"ansible_host": "127.0.0.10"}})
    cert, key = certificate(tmp_path)
    port = free_port()
    url = f"https://127.0.0.1:{port}/api/v2/job_templates/{world.template_id}/callback/"

    with nginx(tmp_path, port, site_for_test(port, http_port, cert, key)):
        # The server sees nginx (127.0.0.1), which names web9's address; web9 pretending
        # to be web10 gains nothing, since nginx sets the header rather than appending to it.
        status, body = await asyncio.to_thread(
            curl_callback, url, cert, "127.0.0.9", world.key, "X-Forwarded-For: 127.0.0.10")

    assert status == 202, body
    job = await job_row(services, body["job"])
    assert (job.host_id, job.limit) == (world.hosts["web9"], "web9")
