"""extra_vars as hosts send them: an object, or a string holding JSON or YAML.

The stock client scripts send a string (``"{\\"a\\": 1}"``, ``"a: 1"``,
``"{ a: 1 }"``), so strings are parsed as JSON first, then YAML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml


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
    try:
        # YAML has dates and NaN; jobs keep variables in JSON columns, which have neither.
        json.dumps(parsed, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ExtraVarsError("extra_vars must hold JSON data only (quote dates and times)") from e
    return dict(parsed)


def without_ansible_keys(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Launch-time variables may not set connection or privilege settings."""
    return {k: v for k, v in variables.items() if not str(k).startswith("ansible_")}


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
