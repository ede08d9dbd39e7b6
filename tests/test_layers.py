"""The layering of DESIGN.md, checked by import-linter's contracts in pyproject.toml.

A reader should find the architecture in ``ls``; these keep it true: no package
imports one above it, resolvers import only the plugin API, the store knows
nothing of Tornado, handlers never touch the store, and no import cycles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.helpers import REPO

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_tree_keeps_every_contract():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_two_modules_import_each_other():
    """Not even for annotations: a cycle says two modules are one, or one is in the wrong place."""
    graph = grimp.build_graph("tornado_callback", "resolvers", exclude_type_checking_imports=False)
    cycles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    )
    assert cycles == []


@pytest.fixture
def copy_of_the_tree(tmp_path):
    for name in ("tornado_callback", "resolvers"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("tornado_callback/store/models.py", "import tornado.web", "The store knows nothing of Tornado"),
    ("resolvers/ip_match.py", "from tornado_callback.store import queries",
     "Resolvers import only the plugin API"),
    ("tornado_callback/accounts/service.py", "from tornado_callback.jobs import launch",
     "No package imports one above it"),
    ("tornado_callback/jobs/handlers.py", "import sqlalchemy",
     "Handlers never touch the store or SQLAlchemy"),
])
def test_a_violation_breaks_its_contract(copy_of_the_tree, module, line, contract):
    path = copy_of_the_tree / module
    path.write_text(path.read_text() + f"\n{line}  # the violation under test\n")
    done = lint_imports(copy_of_the_tree)
    assert done.returncode != 0
    assert f"{contract} BROKEN" in done.stdout
