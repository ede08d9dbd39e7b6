"""The plugin contract. Every hook is prefixed ``tcb_``.

A plugin is any object or module with functions marked ``@plugin.hookimpl``
(``from tornado_callback import plugin``) whose names match the specs below. Built-in
resolvers (the ``resolvers`` package) are plugins like any other; third-party
ones are found through the entry point group ``tornado_callback.resolvers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado_callback.plugin.markers import hookspec

if TYPE_CHECKING:
    from tornado_callback.config import Settings
    from tornado_callback.plugin.resolver import HostResolver


@hookspec
def tcb_register_resolvers(settings: Settings) -> list[HostResolver] | None:
    """Return the host resolvers this plugin provides.

    Called once when the server (or a command) starts. The chain collects the
    resolvers of every plugin, drops those that plugins.toml disables, and
    ranks the rest by priority: plugins.toml's ``priority`` if given, else the
    resolver's own ``priority`` attribute; higher runs first.

    :param settings: the server's settings. A resolver reads its own options
        with ``settings.plugins.options(NAME)``: the keys of its
        ``[resolvers.NAME]`` table other than ``priority``, ``enabled`` and
        ``timeout``. Raise ``plugin.ConfigError`` for an
        unusable option; the server refuses to start and shows the message.

    :return: a list of ``plugin.HostResolver`` instances,
        each with a ``name`` unique across all plugins; or None (or an empty
        list) to contribute nothing.

    At request time the chain awaits each resolver's ``resolve(request,
    state, hosts)`` in order, under its timeout. ``resolve`` returns a
    ``ResolverResult`` (matched hosts, evidence, and optionally the client
    addresses or names that later resolvers should use) or None so that the
    next resolver is tried. The first result naming exactly one enabled host
    decides and the rest do not run; an exception or a timeout becomes an
    ``error`` or ``timeout`` entry in the trace. Index keys come from
    ``index_keys`` when a host is saved, or, when they need I/O (DNS), from
    ``refreshed_index_keys`` in the background; ``aclose`` is awaited when the
    server stops. See ``plugin.HostResolver``.
    """
