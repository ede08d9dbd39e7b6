"""clients/tcb-callback.sh, the real script run by sh (and dash when installed), against a local
metadata emulator and a recording stand-in for the server: what it posts verifies, its nonce is
made once and kept root-only, and it retries as AWX's script does."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import plugins_config_for
from tests.helpers import REPO, free_port
from tests.identity.cloud import AUDIENCE
from tests.identity.emulator import (
    AWS_IDENTITY_PATH,
    GCP_IDENTITY_PATH,
    AwsMetadata,
    GcpMetadata,
    LoopbackServer,
    Request,
)
from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.identity import TrustAnchors, verify
from tornado_callback.identity.gcp import GcpAnchors

SCRIPT = REPO / "clients" / "tcb-callback.sh"
SHELLS = ["sh", *(["dash"] if shutil.which("dash") else [])]
# The awks a minimal image may have (Debian's mawk, gawk, BusyBox's): the escaping must hold in each.
AWKS = [awk for awk in ("mawk", "gawk", "busybox") if shutil.which(awk)]
TEMPLATE_ID = "7"
KEY = "a-host-config-key"
# A port nothing listens on: a metadata service that is not there refuses at once.
NOWHERE = f"http://127.0.0.1:{free_port()}"


class CallbackServer(LoopbackServer):
    """Stands in for tornado-callback: records the callbacks and answers ``statuses`` in turn,
    the last one again once they run out."""

    def __init__(self, *statuses: int) -> None:
        super().__init__()
        self.statuses = statuses or (202,)

    def answer(self, request: Request) -> tuple[int, str]:
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        return status, json.dumps({"msg": f"answer {len(self.requests)}"})

    def bodies(self) -> list[Any]:
        for request in self.requests:
            assert request.method == "POST"
            assert request.path == f"/api/v2/job_templates/{TEMPLATE_ID}/callback/"
            assert request.headers["content-type"] == "application/json"
        return [json.loads(request.body) for request in self.requests]


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def nonce_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "nonce"


def invocation(shell: str, nonce_file: Path, server: str, *args: str, template_id: str = TEMPLATE_ID,
               aws: str = NOWHERE, gcp: str = NOWHERE, **env: str) -> tuple[list[str], dict[str, str]]:
    """The script's command line and environment, against the server at URL ``server``. The
    metadata services are nowhere unless given, so nothing ever leaves loopback (the defaults
    are the real clouds' addresses)."""
    environment = {
        "PATH": os.environ["PATH"],
        "TCB_AWS_METADATA_URL": aws,
        "TCB_GCP_METADATA_URL": gcp,
        "TCB_NONCE_FILE": str(nonce_file),
        "TCB_RETRY_DELAY": "0",
        **env,
    }
    return [shell, str(SCRIPT), "-s", server, "-t", template_id, "-c", KEY, *args], environment


@pytest.fixture
def run(shell: str, nonce_file: Path):
    """Runs the script (see ``invocation``) and waits for it."""

    def call(server: str, *args: str, **options: str) -> subprocess.CompletedProcess[str]:
        argv, environment = invocation(shell, nonce_file, server, *args, **options)
        return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60)

    return call


@pytest.mark.parametrize("form", ["signature", "rsa2048"])
def test_on_aws_it_posts_the_signed_document_that_verifies(run, aws, anchors, nonce_file, form):
    with AwsMetadata(aws, "i-0aaaaaaaaaaaaaaa1") as imds, CallbackServer(202) as server:
        done = run(server.url, aws=imds.url, TCB_AWS_PROOF=form)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: 202 received." in done.stdout
    [body] = server.bodies()
    assert set(body) == {"host_config_key", "cloud_identity"}
    assert body["host_config_key"] == KEY
    identity = body["cloud_identity"]
    assert set(identity) == {"provider", "document", form, "nonce"}
    assert identity["provider"] == "aws"
    assert identity["document"] == imds.document
    assert identity["nonce"] == nonce_file.read_text().strip()
    assert verify(identity, anchors, time.time()).instance_id == "i-0aaaaaaaaaaaaaaa1"


def test_on_gcp_it_posts_a_token_for_the_server_that_verifies(run, gcp):
    with GcpMetadata(gcp, "5555", "db-2") as metadata, CallbackServer(202) as server:
        done = run(server.url, gcp=metadata.url)
    assert done.returncode == 0, done.stdout + done.stderr
    [body] = server.bodies()
    assert set(body) == {"host_config_key", "cloud_identity"}
    assert set(body["cloud_identity"]) == {"provider", "token"}
    assert body["cloud_identity"]["provider"] == "gcp"
    # The default audience is the server's base URL, what the server expects by default.
    assert metadata.audiences() == [server.url + "/"]
    keys = {kid: key.public_key() for kid, key in gcp.keys.items()}
    verified = verify(body["cloud_identity"], TrustAnchors(gcp=GcpAnchors(keys, server.url + "/")), time.time())
    assert (verified.instance_id, verified.instance_name) == ("5555", "db-2")


def test_an_audience_given_is_the_one_asked_for(run, gcp, anchors):
    with GcpMetadata(gcp) as metadata, CallbackServer(202) as server:
        done = run(server.url, "-a", AUDIENCE, gcp=metadata.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert metadata.audiences() == [AUDIENCE]
    assert verify(server.bodies()[0]["cloud_identity"], anchors, time.time()).provider == "gcp"


# What a JSON string must escape, raw: every control character, DEL, a backslash and a quote,
# CRLF line ends, and line breaks at the end (which command substitution would drop).
AWKWARD = "".join(map(chr, range(1, 32))) + "\x7f \\ \" \\\" \\n \\u0041 \r\nnext line\r\n\n\n"


@pytest.mark.parametrize("awk", AWKS)
def test_every_awkward_character_reaches_the_server_as_it_was(run, aws, tmp_path, awk):
    programs = tmp_path / "bin"
    programs.mkdir()
    (programs / "awk").symlink_to(shutil.which(awk))
    extra_vars = '{"path": "C:\\\\tmp", "quote": "\\""}\n\tsecond: line\n'
    with AwsMetadata(aws) as imds, CallbackServer(202) as server:
        imds.document = AWKWARD
        done = run(server.url, "-e", extra_vars, aws=imds.url, PATH=f"{programs}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stdout + done.stderr
    [body] = server.bodies()
    assert body["cloud_identity"]["document"] == AWKWARD
    assert body["extra_vars"] == extra_vars


def test_a_document_with_escapes_tabs_and_crlf_still_verifies(run, aws, anchors):
    with AwsMetadata(aws) as imds, CallbackServer(202) as server:
        document = aws.document(note='a "quoted" back\\slash\t\x01').replace("\n  ", "\r\n\t") + "\n"
        imds.document = document
        done = run(server.url, aws=imds.url)
    assert done.returncode == 0, done.stdout + done.stderr
    identity = server.bodies()[0]["cloud_identity"]
    assert identity["document"] == document
    assert verify(identity, anchors, time.time()).provider == "aws"


def test_the_nonce_is_made_once_root_only_and_kept(run, aws, nonce_file):
    with AwsMetadata(aws) as imds, CallbackServer(202) as server:
        first = run(server.url, aws=imds.url)
        made = nonce_file.stat()
        second = run(server.url, aws=imds.url)
    assert first.returncode == second.returncode == 0, first.stdout + second.stdout
    assert "Made a new nonce" in first.stdout
    assert "Made a new nonce" not in second.stdout
    assert stat.S_IMODE(made.st_mode) == 0o600
    assert stat.S_IMODE(nonce_file.parent.stat().st_mode) == 0o700
    kept = nonce_file.stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    nonces = [body["cloud_identity"]["nonce"] for body in server.bodies()]
    assert nonces[0] == nonces[1] == nonce_file.read_text().strip()
    assert len(nonces[0]) >= 32
    assert [p.name for p in nonce_file.parent.iterdir()] == ["nonce"]


def test_without_metadata_it_posts_without_identity_and_says_so(run):
    with CallbackServer(202) as server:
        done = run(server.url, "-e", "a: 1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "posting without a cloud identity" in done.stdout
    assert server.bodies() == [{"host_config_key": KEY, "extra_vars": "a: 1"}]


@pytest.mark.parametrize("statuses, attempts, code, posts", [
    ((201,), "10", 0, 1),                # any 2xx is success
    ((503, 400, 403, 202), "10", 0, 4),  # anything else is retried
    ((404,), "10", 1, 1),                # 404 stops at once
    ((500,), "3", 1, 3),                 # TCB_ATTEMPTS posts in all, then give up
])
def test_retries_as_awx_does(run, statuses, attempts, code, posts):
    with CallbackServer(*statuses) as server:
        done = run(server.url, TCB_ATTEMPTS=attempts)
    assert done.returncode == code, done.stdout + done.stderr
    assert len(server.requests) == posts
    # The server's answer is shown, so a user reads why in the boot log.
    assert f'"msg": "answer {posts}"' in done.stdout + done.stderr


def test_each_attempt_brings_a_fresh_token(run, gcp):
    """The server accepts a GCP token once: a retry with the same token would be refused."""
    with GcpMetadata(gcp) as metadata, CallbackServer(503, 202) as server:
        done = run(server.url, gcp=metadata.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(metadata.audiences()) == len(server.requests) == 2


def test_an_unreachable_server_stops_at_once(run):
    done = run(NOWHERE, TCB_ATTEMPTS="3")
    assert done.returncode == 7  # curl's "could not connect"
    assert "halting" in done.stderr


def test_the_emulator_refuses_what_the_real_services_refuse(aws, gcp):
    """Without their headers the clouds refuse: so the script's passing runs prove it sends them."""

    def status(url: str, method: str = "GET") -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as refused:
            return refused.code

    with AwsMetadata(aws) as imds, GcpMetadata(gcp) as metadata:
        assert status(imds.url + AWS_IDENTITY_PATH + "document") == 401
        assert status(imds.url + "/latest/api/token", "PUT") == 400
        assert status(f"{metadata.url}{GCP_IDENTITY_PATH}?audience=x&format=full") == 403


@pytest.fixture
def plugins_config(tmp_path, aws):
    """The real server's: it trusts the emulator's AWS certificate."""
    certificate = tmp_path / "aws.pem"
    certificate.write_bytes(aws.pem)
    return plugins_config_for(cloud_metadata={"aws_certificates": [str(certificate)]})


@pytest.mark.gen_test(timeout=60)
async def test_two_hosts_behind_one_address_each_get_their_own_job(base_url, seed, services, aws, tmp_path):
    """Against the real server: both instances call from 127.0.0.1, their NAT address."""
    world = await seed({"web-a": {"instance_id": "i-0aaaaaaaaaaaaaaa1", "ansible_host": "127.0.0.1"},
                        "web-b": {"ec2_instance_id": "i-0bbbbbbbbbbbbbbb2", "ansible_host": "127.0.0.1"}}, key=KEY)
    template_id = str(world.template_id)
    with AwsMetadata(aws, "i-0aaaaaaaaaaaaaaa1") as imds_a, AwsMetadata(aws, "i-0bbbbbbbbbbbbbbb2") as imds_b:
        # The address alone matches both: without its identity a host is refused (and retried).
        outputs = [await _script(tmp_path / "none", base_url, template_id=template_id, TCB_ATTEMPTS="1")]
        for name, imds in (("a", imds_a), ("b", imds_b)):
            outputs.append(await _script(tmp_path / name, base_url, template_id=template_id, aws=imds.url))
    assert [code for code, _ in outputs] == [1, 0, 0], outputs
    assert "Multiple hosts matched the request!" in outputs[0][1]
    _, jobs = await services.jobs.page(LOCAL_ADMIN)
    assert sorted(job.limit for job in jobs) == ["web-a", "web-b"]


async def _script(state: Path, server: str, **options: str) -> tuple[int, str]:
    """The script run by sh without blocking the event loop the server answers on."""
    argv, environment = invocation("sh", state / "nonce", server, **options)
    process = await asyncio.create_subprocess_exec(*argv, env=environment, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()
