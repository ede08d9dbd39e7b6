"""The README's administration walk-through (curl only), run verbatim (bar the port) against a real ``serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, cli_env, free_port

README = REPO / "README.md"


def admin_section() -> str:
    text = README.read_text()
    start = text.index("## Administration API")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_curl_setup_works_verbatim(tmp_path: Path) -> None:
    blocks = re.findall(r"^```sh\n(.*?)^```$", admin_section(), flags=re.DOTALL | re.MULTILINE)
    script = "set -eu\n" + "\n".join(blocks).replace("8052", str(free_port())) + "\nkill %1\nwait\n"
    env = cli_env()
    # The README's `tornado-callback` is this checkout's, from this virtualenv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    out = run.stdout
    assert '"$encrypted$"' in out
    assert "HTTP/1.1 202 Accepted" in out and "Location: /api/v2/jobs/1/" in out
    assert '"host_name": "web1"' in out and '"resolved_by": "ip_match"' in out
    assert '[\n  "web2"\n]' in out
    assert '{"job":2,"id":2,"type":"job","url":"/api/v2/jobs/2/","ignored_fields":{}}' in out
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
