"""``serve`` flags that change how it listens: TLS and several processes."""

from __future__ import annotations

import json
import subprocess

from tests.helpers import ServerProcess


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-s", *args], capture_output=True, text=True, timeout=30)


def test_tls_with_certificate_and_key(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = ServerProcess("--certfile", str(cert), "--keyfile", str(key), cwd=tmp_path)
    try:
        server.wait_for("listening on https://")
        ping = curl("--cacert", str(cert), f"https://127.0.0.1:{server.port}/api/v2/ping/")
        assert json.loads(ping.stdout)["database"] is True
        plain = curl(f"http://127.0.0.1:{server.port}/api/v2/ping/")
        assert plain.stdout == ""
    finally:
        assert server.stop() == 0, server.output


def test_several_processes_share_the_port_and_the_database(tmp_path):
    server = ServerProcess("--processes", "2", "--demo", cwd=tmp_path)
    try:
        server.wait_for("curl http://")
        answers = [curl(f"{server.base_url}/api/v2/ping/").stdout for _ in range(20)]
        assert all(json.loads(a)["database"] is True for a in answers)
        curl_line = next(line.strip() for line in server.output.splitlines()
                         if line.strip().startswith("curl -s -i"))
        posted = subprocess.run(["bash", "-c", curl_line], capture_output=True, text=True, timeout=30)
        assert posted.stdout.startswith("HTTP/1.1 202"), posted.stdout
    finally:
        assert server.stop() == 0, server.output
