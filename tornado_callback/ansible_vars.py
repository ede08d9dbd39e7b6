"""A job's extra vars as ansible-playbook reads them: what a caller gave is data.

Ansible templates a variable's strings whenever a task uses them, so a value
such as ``{{ lookup('pipe', 'id') }}`` given at launch would run a command on
this server. YAML's ``!unsafe`` tag (Ansible's AnsibleUnsafe) makes a string
literal text: every string given at launch gets it, keys included, at any
depth, as AWX does for prompts and surveys. The template's own extra_vars are
the admin's configuration and keep templating, as in AWX.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


class _Unsafe(str):
    """A string Ansible must never template."""


class _ExtraVarsDumper(yaml.SafeDumper):
    pass


def _represent_unsafe(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", str(value))


_ExtraVarsDumper.add_representer(_Unsafe, _represent_unsafe)


def marked_unsafe(value: Any) -> Any:
    """``value`` with every string in it, mapping keys included, marked unsafe."""
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, Mapping):
        return {marked_unsafe(k): marked_unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [marked_unsafe(v) for v in value]
    return value


def extravars_document(configured: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    """YAML for ``ansible-playbook -e @FILE``: ``configured`` as it is, ``given`` as data.

    ``given`` wins where both name a variable, as a launch overrides a template.
    """
    variables = {k: v for k, v in configured.items() if k not in given}
    variables.update(marked_unsafe(dict(given)))
    return yaml.dump(variables, Dumper=_ExtraVarsDumper, sort_keys=False, allow_unicode=True, width=float("inf"))
