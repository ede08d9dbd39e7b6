"""Real helper servers for tests: nginx as a reverse proxy, dnsmasq as a DNS server.

Each runs as a subprocess on a free loopback port with its configuration in
the test's tmp directory, and is stopped (by its own pid) when the test ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import free_port


def free_dns_port() -> int:
    """A port free for UDP and for TCP: dnsmasq listens on both, and a port the
    kernel gave out as free for UDP may be a test server's TCP port."""
    while True:
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def require(program: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{program} is not installed (.ci/run installs it)")
    return path


@contextmanager
def running(argv: Sequence[str], ready: Callable[[], bool], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{argv[0]} did not start: {log.read_text(errors='replace')}")
            time.sleep(0.02)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@contextmanager
def nginx_proxy(tmp_path: Path, upstream_port: int) -> Iterator[int]:
    """nginx on a free port relaying to 127.0.0.1:upstream_port, appending X-Forwarded-For."""
    port = free_port()
    with nginx(tmp_path, port, f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"""):
        yield port


@contextmanager
def nginx(tmp_path: Path, port: int, sites: str) -> Iterator[None]:
    """nginx serving ``sites`` (the inside of its http block: what a site file holds), ready
    once it accepts connections on ``port``."""
    program = require("nginx")
    root = tmp_path / "nginx"
    root.mkdir()
    conf = root / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{sites}
}}
""")
    with running([program, "-p", str(root), "-c", str(conf)], lambda: _accepts(port), root / "out.log"):
        yield


def _answers_dns(port: int) -> bool:
    # A query for the root's SOA; any reply means dnsmasq is serving.
    query = bytes.fromhex("abcd01000001000000000000" "0000060001")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(query, ("127.0.0.1", port))
            return s.recv(512)[:2] == query[:2]
        except OSError:
            return False


@contextmanager
def dnsmasq(
    tmp_path: Path, records: Sequence[str], *, authoritative: bool = True
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """dnsmasq on a free UDP port serving only ``records`` (dnsmasq options such as
    ``--host-record=NAME,ADDR`` or ``--ptr-record=PTR,NAME``); other names are NXDOMAIN.
    Not ``authoritative``, it is a dnsmasq without upstream servers as people run it:
    what it does not hold (another name, or the AAAA of a name it holds only an A
    for) it answers REFUSED. Yields the port and the process (a test may stop it early)."""
    program = require("dnsmasq")
    port = free_dns_port()
    root = tmp_path / "dnsmasq"
    root.mkdir()
    argv = [
        program, "--keep-in-foreground", "--port", str(port), "--listen-address=127.0.0.1",
        "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
        f"--pid-file={root}/dnsmasq.pid", "--log-facility=-",
        # Authoritative for everything: names it does not hold are NXDOMAIN, not REFUSED.
        *(["--local=/#/"] if authoritative else []),
        *records,
    ]
    with running(argv, lambda: _answers_dns(port), root / "out.log") as process:
        yield port, process


@contextmanager
def silent_udp_server() -> Iterator[tuple[int, socket.socket]]:
    """A UDP port that receives queries and never answers: a DNS server that hangs.
    Yields the port and the socket, whose queued datagrams are the queries sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1], s
