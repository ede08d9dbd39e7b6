"""The plugin API, in one import: everything a resolver plugin, built-in or third-party, may use.

    from tornado_callback import plugin

    class MyResolver(plugin.HostResolver): ...

The hooks are documented in ``tornado_callback.plugin.spec``. Nothing else of
the package is the plugins' business; the built-in resolvers (``resolvers/``)
import only this module, exactly as a third-party plugin does.
"""

from tornado_callback.config import ConfigError, Settings
from tornado_callback.plugin.addresses import (
    EFFECTIVE_HOST_VARIABLES,
    effective_host,
    effective_host_name,
    normalise_address,
    normalise_name,
    parse_address,
)
from tornado_callback.plugin.dns import DNSFailure, DNSLookup, DNSSettings, dns_settings, record_type
from tornado_callback.plugin.markers import PROJECT_NAME, hookimpl
from tornado_callback.plugin.resolver import (
    ADDRESS_KIND,
    CLOUD_IDENTITY_OPTIONS,
    INSTANCE_KIND,
    NAME_KIND,
    RESOLVED_ADDRESS_KIND,
    CallbackRequest,
    CloudIdentity,
    HostIndex,
    HostLookup,
    HostRef,
    HostResolver,
    IndexEntry,
    IndexKey,
    Outcome,
    ResolutionState,
    ResolverResult,
)

__all__ = [
    "EFFECTIVE_HOST_VARIABLES",
    "ADDRESS_KIND",
    "CLOUD_IDENTITY_OPTIONS",
    "INSTANCE_KIND",
    "NAME_KIND",
    "RESOLVED_ADDRESS_KIND",
    "PROJECT_NAME",
    "CallbackRequest",
    "CloudIdentity",
    "ConfigError",
    "DNSFailure",
    "DNSLookup",
    "DNSSettings",
    "HostIndex",
    "HostLookup",
    "HostRef",
    "HostResolver",
    "IndexEntry",
    "IndexKey",
    "Outcome",
    "ResolutionState",
    "ResolverResult",
    "Settings",
    "dns_settings",
    "effective_host",
    "effective_host_name",
    "hookimpl",
    "normalise_address",
    "normalise_name",
    "parse_address",
    "record_type",
]
