"""File descriptors: slow connections past the descriptor limit, and the timeouts that end them.

A real server under ``prlimit``, real slow loopback connections (each sends a
header line now and then and never finishes its request, as slowloris does),
and a ping from a fresh connection all along.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import threading
import time
import urllib.request

import psutil
import pytest

from tests.helpers import ServerProcess
from tornado_callback.config import build_settings

SLOW_CONNECTIONS = 1100
DESCRIPTOR_LIMIT = 1024
ATTACK_SECONDS = 12.0


class SlowClients(threading.Thread):
    """``count`` connections that send a header line every second and never end their
    request; a connection the server closes is opened again at once, as an attacker would."""

    def __init__(self, port: int, count: int) -> None:
        super().__init__(daemon=True)
        self.address = ("127.0.0.1", port)
        # Each socket, and whether its request line is sent.
        self.clients = [(self._connect(), False) for _ in range(count)]
        self.stopped = threading.Event()

    def _connect(self) -> socket.socket:
        sock = socket.socket()
        sock.setblocking(False)  # past the listen backlog, a connect would wait
        sock.connect_ex(self.address)
        return sock

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            for index, (sock, started) in enumerate(self.clients):
                text = b"X-Slow: 1\r\n" if started else b"GET /api/v2/ping/ HTTP/1.1\r\nHost: x\r\n"
                try:
                    sock.send(text)
                except (BlockingIOError, InterruptedError):
                    continue  # still connecting
                except OSError as e:
                    if e.errno == errno.ENOTCONN:
                        continue
                    sock.close()  # closed by the server
                    self.clients[index] = (self._connect(), False)
                else:
                    self.clients[index] = (sock, True)

    def close(self) -> None:
        self.stopped.set()
        self.join()
        for sock, _started in self.clients:
            sock.close()


def ping(base_url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/api/v2/ping/", timeout=timeout) as answer:
            return json.loads(answer.read())["database"] is True
    except OSError:
        return False


def test_slow_connections_past_the_descriptor_limit(database_url, tmp_path):
    server = ServerProcess("--database-url", database_url, "--no-worker", cwd=tmp_path,
                           wrapper=("prlimit", f"--nofile={DESCRIPTOR_LIMIT}"))
    attack = None
    try:
        server.wait_for("serving on")
        process = psutil.Process(server.proc.pid)
        cpu_before = sum(process.cpu_times()[:2])
        started = time.monotonic()
        attack = SlowClients(server.port, SLOW_CONNECTIONS)
        attack.start()
        pings, most_descriptors = [], 0
        while time.monotonic() - started < ATTACK_SECONDS:
            pings.append(ping(server.base_url))
            most_descriptors = max(most_descriptors, process.num_fds())
            time.sleep(0.5)
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        elapsed = time.monotonic() - started
        attack.close()
        attack = None
        assert all(pings), f"pings answered during the attack: {pings}"
        assert ping(server.base_url), "ping after the attack"
        assert most_descriptors < DESCRIPTOR_LIMIT
        # Before: the loop spun on a failing accept() (18 s of CPU in 30 s).
        assert cpu < 0.35 * elapsed, f"{cpu:.1f}s of CPU in {elapsed:.1f}s"
    finally:
        if attack is not None:
            attack.close()
        assert server.stop() == 0, server.output
    output = server.output
    assert "Traceback" not in output, output[-5000:]
    assert len(output) < 50_000, f"{len(output)} bytes of log, ending:\n{output[-3000:]}"
    assert len(re.findall(r"not accepting connections for now: \d+ connections are open", output)) == 1, output
    match = re.search(r"at most (\d+) connections at once", output)
    assert match and int(match.group(1)) < DESCRIPTOR_LIMIT


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(tmp_path):
    server = ServerProcess("--no-worker", cwd=tmp_path, wrapper=("prlimit", "--nofile=256:4096"))
    try:
        server.wait_for("serving on")
        assert psutil.Process(server.proc.pid).rlimit(psutil.RLIMIT_NOFILE) == (4096, 4096)
        cap = int(re.search(r"at most (\d+) connections at once", server.output).group(1))
        assert 256 < cap < 4096
    finally:
        assert server.stop() == 0, server.output


def closed_after(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes ``sock`` (what it sent is read and dropped); None if it stays open."""
    started = time.monotonic()
    deadline = started + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            break
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def test_defaults_bound_every_wait():
    settings = build_settings()
    assert settings.header_timeout <= 30 and settings.body_timeout <= 120 and settings.idle_timeout <= 120


@pytest.fixture
def quick_timeouts_server(tmp_path):
    server = ServerProcess("--no-worker", cwd=tmp_path, TORNADO_CALLBACK_HEADER_TIMEOUT="1",
                           TORNADO_CALLBACK_BODY_TIMEOUT="1", TORNADO_CALLBACK_IDLE_TIMEOUT="3")
    server.wait_for("serving on")
    yield server
    assert server.stop() == 0, server.output
    assert "Traceback" not in server.output, server.output


def test_slow_headers_are_cut_off(quick_timeouts_server):
    with socket.create_connection(("127.0.0.1", quick_timeouts_server.port)) as sock:
        sock.sendall(b"GET /api/v2/ping/ HTTP/1.1\r\nHost: x\r\n")
        waited = closed_after(sock, 10)
    assert waited is not None and waited < 3


def test_a_slow_body_is_cut_off(quick_timeouts_server):
    with socket.create_connection(("127.0.0.1", quick_timeouts_server.port)) as sock:
        sock.sendall(b"POST /api/v2/job_templates/1/callback/ HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"host")
        waited = closed_after(sock, 10)
    assert waited is not None and waited < 3
    # The request cut off is not one a stopping server waits for (20 s, twice).
    started = time.monotonic()
    assert quick_timeouts_server.stop() == 0
    assert time.monotonic() - started < 10


def test_a_kept_alive_connection_waits_the_idle_timeout(quick_timeouts_server):
    with socket.create_connection(("127.0.0.1", quick_timeouts_server.port)) as sock:
        sock.sendall(b"GET /api/v2/ping/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # Longer than the header timeout: the wait for a next request is the idle timeout's.
        assert closed_after(sock, 2) is None
        sock.sendall(b"GET /api/v2/ping/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        waited = closed_after(sock, 10)
    assert waited is not None and 2 < waited < 5
