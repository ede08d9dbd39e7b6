"""Settings: flags first, then ``TORNADO_CALLBACK_*`` environment variables, then defaults.

Everything here is a frozen dataclass, built once at start-up and handed down;
nothing reads the environment later.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

ENV_PREFIX = "TORNADO_CALLBACK_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///tornado-callback.db"
DEFAULT_PLUGINS_FILE = "plugins.toml"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")

# Keys of a [resolvers.NAME] table that the chain itself consumes; the rest are
# the resolver's own options.
CHAIN_KEYS = frozenset({"priority", "enabled", "timeout"})


class ConfigError(ValueError):
    """A setting or plugins.toml entry is unusable; the message says which and why."""


@dataclass(frozen=True)
class ResolverConfig:
    """One ``[resolvers.NAME]`` table of plugins.toml."""

    name: str
    priority: int | None = None
    enabled: bool = True
    timeout: float | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class PluginsConfig:
    """plugins.toml, parsed. Resolvers it does not name run with their defaults."""

    path: Path | None = None
    resolvers: Mapping[str, ResolverConfig] = field(default_factory=lambda: MappingProxyType({}))

    def for_resolver(self, name: str) -> ResolverConfig:
        return self.resolvers.get(name) or ResolverConfig(name=name)

    def options(self, name: str, known: Iterable[str] | None = None) -> Mapping[str, Any]:
        """The resolver's own options; with ``known``, any other option is a ConfigError."""
        options = self.for_resolver(name).options
        unknown = set(options) - set(known) if known is not None else set()
        if unknown:
            raise ConfigError(f"resolvers.{name}: unknown option(s) {', '.join(sorted(unknown))}")
        return options


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8052
    processes: int = 1
    certfile: str | None = None
    keyfile: str | None = None
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    # Largest request body accepted, in bytes (API.md: default 1 MiB).
    max_body_size: int = 1024 * 1024
    # Seconds a connection may take to send a request's headers, then its body
    # (Tornado would wait an hour for headers: a slow client held a descriptor
    # that long). A kept-alive connection may wait idle_timeout for its next
    # request: longer than nginx's upstream keepalive_timeout (60 s), so that a
    # proxy never sends a request on a connection closing under it.
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 75.0
    # Connections open at once in each process (0: as many as its descriptor
    # limit allows, less what the rest of the server needs; connections.py).
    max_connections: int = 0
    # Default time a resolver may take before it becomes a `timeout` trace entry.
    resolver_timeout: float = 5.0
    # Failures allowed per window before 429 (ratelimit.py): wrong keys per client
    # address and per job template (every address together), failed logins per
    # user name and per client address.
    bad_key_limit: int = 20
    bad_key_template_limit: int = 1000
    bad_key_window: float = 60.0
    login_user_limit: int = 10
    login_address_limit: int = 30
    login_window: float = 300.0
    # Verified self-registration (API.md section 4): hosts an inventory may gain by callback
    # per minute (429 beyond), and whether a GCP instance's host is named by its instance
    # name rather than its id.
    registrations_per_minute: int = 10
    register_gcp_by_name: bool = False
    # How long a verified Basic credential is remembered, so that admins' GETs
    # do not pay for an argon2 verification each time.
    auth_cache_seconds: float = 60.0
    # How long a callback waits for an update-on-launch inventory sync before
    # answering "No matching host could be found!" (the sync carries on).
    inventory_sync_wait: float = 60.0
    # Time an inventory sync may run when its source sets no timeout of its own.
    inventory_sync_timeout: float = 300.0
    # Jobs this process runs at once (0: none, an API-only node).
    workers: int = 2
    # How often an idle worker looks for pending jobs, in seconds.
    job_poll_interval: float = 1.0
    # A running job's lease; its worker renews it, and a job whose lease ran
    # out (its worker died) is marked `error` so its host may call back again.
    job_lease_seconds: float = 60.0
    # Pending callback jobs of one template and launch that a worker runs as one
    # ansible-playbook (coalesced runs, executor.py), at most; 1 runs each job alone.
    job_batch_size: int = 50
    # Seconds a worker waits, once it took a callback job, for more of its kind
    # to join the run. 0: none; batches form because jobs pile up while workers are busy.
    job_batch_linger: float = 0.0
    # Fernet key for credential secrets; without it, secret_key_file is used
    # (created with mode 0600 on first use; default: beside the SQLite
    # database, or in the working directory).
    secret_key: str | None = field(default=None, repr=False)
    secret_key_file: str | None = None
    # Playbooks run in a bubblewrap sandbox (sandbox.py); off only by the admin's explicit choice.
    job_isolation: bool = True
    bwrap: str = "bwrap"
    # Paths every sandboxed run may read and write besides its own (AWX_ISOLATION_SHOW_PATHS).
    job_show_paths: tuple[str, ...] = ()
    # Where runs keep their private directories (default: tornado-callback-UID in the temp directory).
    run_dir: str | None = None
    # /metrics (README, "Metrics"): served unless off; with a token, only to "Authorization: Bearer TOKEN".
    metrics: bool = True
    metrics_token: str | None = field(default=None, repr=False)
    # ``tornado-callback worker`` serves /metrics on this port of 127.0.0.1 (0: not at all).
    metrics_port: int = 0
    # Logs (README, "Logs"): the least level written, and one line of text or of JSON a record.
    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix) and self.database_url[len(prefix):] not in ("", ":memory:"):
            return Path(self.database_url[len(prefix):])
        return None

    @property
    def key_file_path(self) -> Path:
        if self.secret_key_file:
            return Path(self.secret_key_file)
        if self.sqlite_path is not None:
            return self.sqlite_path.parent / "tornado-callback.key"
        return Path("tornado-callback.key")

    @property
    def run_dir_path(self) -> Path:
        return Path(self.run_dir or Path(tempfile.gettempdir()) / f"tornado-callback-{os.geteuid()}")

    def server_state_paths(self) -> list[Path]:
        """What a playbook must never see: the database, the key, plugins.toml, runs, the working directory."""
        paths = [self.key_file_path, self.run_dir_path, Path.cwd()]
        if self.sqlite_path is not None:
            paths += [self.sqlite_path.with_name(self.sqlite_path.name + suffix)
                      for suffix in ("", "-wal", "-shm", "-journal")]
        if self.plugins.path is not None:
            paths.append(self.plugins.path)
        return paths


def normalise_database_url(url: str) -> str:
    """Accept the URL spellings people paste, and pick the async drivers we ship."""
    for prefix, replacement in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(prefix):
            return replacement + url[len(prefix):]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(
        f"unsupported database URL {url.split('://')[0]}://...: "
        "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
    )


def load_plugins_config(path: Path | None) -> PluginsConfig:
    """Read plugins.toml; ``None`` means ``plugins.toml`` in the working directory, if present."""
    explicit = path is not None
    path = path or Path(DEFAULT_PLUGINS_FILE)
    if not path.exists():
        if explicit:
            raise ConfigError(f"plugins file {path} does not exist")
        return PluginsConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read plugins file {path}: {e}") from e
    return parse_plugins_config(data, path)


def parse_plugins_config(data: Mapping[str, Any], path: Path | None = None) -> PluginsConfig:
    where = str(path) if path else "plugins config"
    unknown = set(data) - {"resolvers"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level table(s): {', '.join(sorted(unknown))}")
    tables = data.get("resolvers", {})
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{where}: [resolvers] must be a table")
    resolvers = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [resolvers.{name}] must be a table")
        priority = table.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise ConfigError(f"{where}: resolvers.{name}.priority must be an integer")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: resolvers.{name}.enabled must be true or false")
        timeout = table.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ConfigError(f"{where}: resolvers.{name}.timeout must be a positive number")
        options = {k: v for k, v in table.items() if k not in CHAIN_KEYS}
        resolvers[name] = ResolverConfig(
            name=name,
            priority=priority,
            enabled=enabled,
            timeout=float(timeout) if timeout is not None else None,
            options=MappingProxyType(options),
        )
    return PluginsConfig(path=path, resolvers=MappingProxyType(resolvers))


def env_value(name: str) -> str | None:
    value = os.environ.get(ENV_PREFIX + name.upper())
    return value if value not in (None, "") else None


def switch(text: str) -> bool:
    """on/off, true/false, yes/no, 1/0, as people write them in unit files."""
    words = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
    if text.strip().lower() not in words:
        raise ValueError(text)
    return words[text.strip().lower()]


def path_list(text: str) -> tuple[str, ...]:
    """Paths separated by ':' (os.pathsep), as in PATH."""
    return tuple(p for p in text.split(os.pathsep) if p)


def log_level(text: str) -> str:
    """A logging level's name: DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case."""
    if text.upper() not in LOG_LEVELS:
        raise ValueError(text)
    return text.upper()


def log_format(text: str) -> str:
    """text or json."""
    if text.lower() not in LOG_FORMATS:
        raise ValueError(text)
    return text.lower()


def build_settings(**flags: Any) -> Settings:
    """Settings from explicit flags (``None`` = not given), then the environment, then defaults."""
    defaults = Settings()
    values: dict[str, Any] = {}
    converters = {
        "database_url": str,
        "host": str,
        "port": int,
        "processes": int,
        "certfile": str,
        "keyfile": str,
        "max_body_size": int,
        "header_timeout": float,
        "body_timeout": float,
        "idle_timeout": float,
        "max_connections": int,
        "resolver_timeout": float,
        "bad_key_limit": int,
        "bad_key_template_limit": int,
        "bad_key_window": float,
        "login_user_limit": int,
        "login_address_limit": int,
        "login_window": float,
        "registrations_per_minute": int,
        "register_gcp_by_name": switch,
        "auth_cache_seconds": float,
        "inventory_sync_wait": float,
        "inventory_sync_timeout": float,
        "workers": int,
        "job_poll_interval": float,
        "job_lease_seconds": float,
        "job_batch_size": int,
        "job_batch_linger": float,
        "secret_key": str,
        "secret_key_file": str,
        "job_isolation": switch,
        "bwrap": str,
        "job_show_paths": path_list,
        "run_dir": str,
        "metrics": switch,
        "metrics_token": str,
        "metrics_port": int,
        "log_level": log_level,
        "log_format": log_format,
    }
    for name, convert in converters.items():
        raw = flags.get(name)
        if raw is None:
            raw = env_value(name)
        if raw is None:
            continue
        try:
            values[name] = convert(raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name}: {raw!r} is not a valid {convert.__name__}") from e
    for name, low in (("workers", 0), ("processes", 0), ("bad_key_limit", 1), ("bad_key_template_limit", 1),
                      ("login_user_limit", 1), ("login_address_limit", 1), ("max_connections", 0),
                      ("registrations_per_minute", 1), ("job_batch_size", 1), ("job_batch_linger", 0)):
        if values.get(name, low) < low:
            raise ConfigError(f"{name} must be at least {low}")
    for name in ("job_poll_interval", "job_lease_seconds", "bad_key_window", "login_window",
                 "header_timeout", "body_timeout", "idle_timeout"):
        if values.get(name, 1.0) <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds")
    # Out of range, the port was taken modulo 65536 (99999 listened on 34463).
    if not 1 <= values.get("port", defaults.port) <= 65535:
        raise ConfigError(f"port {values['port']} is not a TCP port (1 to 65535)")
    if not 0 <= values.get("metrics_port", 0) <= 65535:
        raise ConfigError(f"metrics_port {values['metrics_port']} is not a TCP port (1 to 65535, or 0: none)")
    if values.get("keyfile") and not values.get("certfile"):
        raise ConfigError("a keyfile without a certfile: give the TLS certificate too (--certfile)")
    values["database_url"] = normalise_database_url(values.get("database_url", defaults.database_url))
    plugins_path = flags.get("plugins") or env_value("plugins")
    values["plugins"] = load_plugins_config(Path(plugins_path) if plugins_path else None)
    return Settings(**values)
