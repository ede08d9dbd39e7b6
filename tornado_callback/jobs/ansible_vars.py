"""A job's extra vars as ansible-playbook reads them: what a caller gave is data.

Ansible templates a variable's strings whenever a task uses them, so a value
such as ``{{ lookup('pipe', 'id') }}`` given at launch would run a command on
this server. The variables given at launch are therefore written to a file of
their own whose root mapping carries YAML's ``!unsafe`` tag (Ansible's
AnsibleUnsafe): Ansible then reads every string in it, mapping keys included,
at any depth, as literal text, as AWX does for prompts and surveys. The tag
goes on the root, not on each string, because Ansible 2.19 resolves a tagged
scalar as if it were unquoted: ``!unsafe "no"`` would become False and
``!unsafe "!"`` would not load at all, while the strings inside a tagged
mapping keep their quoting and so their type.

The template's own extra_vars are the admin's configuration and keep
templating, as in AWX.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml


class _UnsafeVariables(dict[str, Any]):
    """Variables Ansible must never template."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_unsafe(dumper: yaml.SafeDumper, value: _UnsafeVariables) -> yaml.MappingNode:
    return dumper.represent_mapping("!unsafe", dict(value))


_Dumper.add_representer(_UnsafeVariables, _represent_unsafe)


def configured_document(configured: Mapping[str, Any]) -> str:
    """The template's own variables for ``-e @FILE``, as they are (JSON is YAML)."""
    return json.dumps(dict(configured))


def given_document(given: Mapping[str, Any]) -> str:
    """Variables given at launch for ``-e @FILE``, to be read as data only."""
    return yaml.dump(_UnsafeVariables(given), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=float("inf"))
