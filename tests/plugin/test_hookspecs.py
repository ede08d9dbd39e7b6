"""Every hook of the plugin contract is documented and tested (as datasette checks its own)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tornado_callback.plugin import spec as hookspecs

HOOKS = sorted(
    name for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, f"{hookspecs.hookspec.project_name}_spec")
)
TESTS = Path(__file__).parents[1]


def test_hooks_are_found():
    assert "tcb_register_resolvers" in HOOKS
    assert all(name.startswith("tcb_") for name in HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name):
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    for parameter in inspect.signature(spec).parameters:
        assert f":param {parameter}:" in doc, f"{name}: :param {parameter}: missing"
    assert ":return:" in doc, f"{name}: :return: missing"
    assert all(p.annotation is not inspect.Parameter.empty
               for p in inspect.signature(spec).parameters.values()), f"{name}: untyped parameter"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_tested(name):
    users = [path.name for path in TESTS.rglob("test_*.py")
             if path.name != Path(__file__).name and name in path.read_text()]
    assert users, f"no test mentions {name}"
