"""The boot-storm benchmark still runs: bench/bootstorm.py at N = 4, one row (the default batch size).

Its figures mean nothing here; what is checked is that it times the direct
ansible-playbook and a real sandboxed server configuring every host, runs its
checks, writes its table and adds its line to the notes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BOOTSTORM = Path(__file__).resolve().parent.parent / "bench" / "bootstorm.py"


def test_four_hosts_calling_back_at_once_are_each_configured_once(tmp_path):
    results, notes = tmp_path / "bootstorm.md", tmp_path / "NOTES.md"
    notes.write_text("# Notes\n\n### Boot storm runs\n\n- an earlier run\n\n## Later section\n")
    done = subprocess.run(
        [sys.executable, str(BOOTSTORM), "--hosts", "4", "--batch-sizes", "default", "--timeout", "150",
         "--results", str(results), "--notes", str(notes)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env={**os.environ, "TORNADO_CALLBACK_WORKERS": "2"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = results.read_text()
    assert table in done.stdout
    assert "| N | repeat | direct ansible-playbook s | default batch size s | default / direct |" in table
    row = next(line for line in table.splitlines() if line.startswith("| 4 | 1 | "))
    direct, served, ratio = (float(cell) for cell in row.strip("| ").split(" | ")[2:])
    assert direct > 0 and served > 0
    # The times are rounded to 0.1 s and the ratio to 0.01: it lies between what the times' ends give.
    assert (served - 0.05) / (direct + 0.05) - 0.005 <= ratio <= (served + 0.05) / (direct - 0.05) + 0.005
    said = ("`ansible-playbook -f F` over the N hosts, F = N", "run the plain way: no server, no sandbox",
            "the bubblewrap sandbox on", "TORNADO_CALLBACK_WORKERS=2", "- N = 4, repeat 1, default batch size: in ",
            "Errors: 0")
    assert [text for text in said if text not in table] == []
    # The run's line ends the boot-storm section, after the earlier one.
    lines = notes.read_text().splitlines()
    line = lines.index("- an earlier run") + 1
    assert lines[line].startswith("- ") and "N = 4, repeat 1: direct ansible-playbook " in lines[line]
    assert lines[line].endswith(f"errors 0 ({results.name})")
    assert lines[line + 1:] == ["", "## Later section"]
