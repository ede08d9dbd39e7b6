"""extra_vars as hosts send them: an object, or a string holding JSON or YAML.

The stock client scripts send a string (``"{\\"a\\": 1}"``, ``"a: 1"``,
``"{ a: 1 }"``), so strings are parsed as JSON first, then YAML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

# Deeper values would only serve to exhaust the stack of whatever walks them
# (writing the run's variables file did, before this limit).
MAX_DEPTH = 64


class ExtraVarsError(ValueError):
    """extra_vars that are not a mapping in any accepted spelling."""


class _NoAliasSafeLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases: a 1 MiB "billion laughs" body would
    otherwise expand into gigabytes once the variables are written out."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not allowed in extra_vars")
        return super().compose_node(parent, index)


def parse_variables(value: Any) -> dict[str, Any]:
    """A dict from an object, a JSON string or a YAML string; empty for None or ''."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        if _depth(value) > MAX_DEPTH:
            raise ExtraVarsError(f"extra_vars nest too deeply (at most {MAX_DEPTH} levels)")
        return dict(value)
    if not isinstance(value, str):
        raise ExtraVarsError("extra_vars must be an object or a string holding JSON or YAML")
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        try:
            parsed = yaml.load(value, Loader=_NoAliasSafeLoader)  # noqa: S506 (safe loader subclass)
        except (yaml.YAMLError, RecursionError, ValueError) as e:
            raise ExtraVarsError(f"extra_vars is neither JSON nor YAML: {_first_line(e)}") from e
    if parsed is None:
        return {}
    if not isinstance(parsed, Mapping):
        raise ExtraVarsError("extra_vars must be a mapping of variable names to values")
    if _depth(parsed) > MAX_DEPTH:
        raise ExtraVarsError(f"extra_vars nest too deeply (at most {MAX_DEPTH} levels)")
    try:
        # YAML has dates and NaN; jobs keep variables in JSON columns, which have neither.
        json.dumps(parsed, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ExtraVarsError("extra_vars must hold JSON data only (quote dates and times)") from e
    return dict(parsed)


# Ansible's special variables that do not start with ``ansible_``: set as an
# extra var, ``inventory_hostname`` is where the SSH connection goes (with the
# template's credential), and the rest are what a playbook trusts Ansible to tell.
SPECIAL_VARIABLES = frozenset({
    "inventory_hostname", "inventory_hostname_short", "inventory_dir", "inventory_file",
    "hostvars", "groups", "group_names", "omit", "play_hosts", "playbook_dir",
    "role_name", "role_names", "role_path",
})


def without_special_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Launch-time variables may not set connection or privilege settings, nor Ansible's own facts."""
    return {k: v for k, v in variables.items()
            if not str(k).startswith("ansible_") and str(k) not in SPECIAL_VARIABLES}


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar is 0), without recursing: a body may nest thousands deep."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
