"""Plugin discovery (pluggy's job) and ranking (ours)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pluggy

from tornado_callback.config import ConfigError, Settings
from tornado_callback.plugin import spec
from tornado_callback.plugin.chain import RankedResolver, ResolverChain
from tornado_callback.plugin.markers import PROJECT_NAME
from tornado_callback.plugin.resolver import HostResolver

ENTRY_POINT_GROUP = "tornado_callback.resolvers"
BUILTIN_PLUGINS = (
    "resolvers.cloud_metadata",
    "resolvers.x_forwarded_for",
    "resolvers.ip_match",
    "resolvers.forward_dns",
    "resolvers.reverse_dns",
)


def make_plugin_manager(
    plugins: Iterable[object] = (), *, load_entrypoints: bool = True, builtins: bool = True
) -> pluggy.PluginManager:
    """A fresh manager: built-ins, then entry-point plugins, then ``plugins`` (tests pass theirs)."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(spec)
    if builtins:
        for module_name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _plugin_sources(pm: pluggy.PluginManager) -> dict[int, str]:
    """Where each registered plugin came from: a distribution, or the plugin's name."""
    sources = {id(plugin): pm.get_name(plugin) or repr(plugin) for plugin in pm.get_plugins()}
    for plugin, dist in pm.list_plugin_distinfo():
        sources[id(plugin)] = f"{dist.metadata['name']} {dist.version}"
    return sources


def discover_resolvers(
    pm: pluggy.PluginManager, settings: Settings
) -> list[tuple[RankedResolver, bool]]:
    """Every installed resolver with its effective rank, and whether it is enabled."""
    sources = _plugin_sources(pm)
    found: dict[str, tuple[HostResolver, str]] = {}
    for impl in pm.hook.tcb_register_resolvers.get_hookimpls():
        provided = impl.function(settings=settings) or []
        for resolver in provided:
            if not isinstance(resolver, HostResolver):
                raise ConfigError(
                    f"plugin {impl.plugin_name} returned {resolver!r}, not a HostResolver"
                )
            if resolver.name in found:
                raise ConfigError(
                    f"resolver name {resolver.name!r} is provided twice "
                    f"({found[resolver.name][1]} and {sources[id(impl.plugin)]})"
                )
            found[resolver.name] = (resolver, sources[id(impl.plugin)])

    missing = sorted(set(settings.plugins.resolvers) - set(found))
    if missing:
        where = settings.plugins.path or "plugins config"
        raise ConfigError(
            f"{where} configures resolver(s) that are not installed: {', '.join(missing)} "
            f"(installed: {', '.join(sorted(found)) or 'none'})"
        )

    ranked = []
    for name, (resolver, source) in found.items():
        config = settings.plugins.for_resolver(name)
        ranked.append(
            (
                RankedResolver(
                    resolver=resolver,
                    priority=config.priority if config.priority is not None else resolver.priority,
                    timeout=config.timeout or settings.resolver_timeout,
                    options=config.options,
                    source=source,
                ),
                config.enabled,
            )
        )
    ranked.sort(key=lambda item: (-item[0].priority, item[0].name))
    return ranked


def build_chain(pm: pluggy.PluginManager, settings: Settings) -> ResolverChain:
    return ResolverChain(r for r, enabled in discover_resolvers(pm, settings) if enabled)
