"""Services: the one object that handlers and commands receive.

Built by ``Services.start`` from settings; carries the database, the plugin
manager and the resolver chain. No module-level state anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import pluggy

from tornado_callback.accounts.credentials import Credentials
from tornado_callback.accounts.ratelimit import FailureLimiter, Limits
from tornado_callback.accounts.secrets import SecretsBox
from tornado_callback.accounts.service import Accounts
from tornado_callback.admin.catalog import RESOURCES
from tornado_callback.admin.service import AdminService
from tornado_callback.admin.template_actions import TemplateActions
from tornado_callback.callback.audit import CallbackAttempts
from tornado_callback.callback.service import CallbackService
from tornado_callback.config import Settings
from tornado_callback.identity import load_anchors
from tornado_callback.identity.service import CloudIdentities
from tornado_callback.inventory.index_refresh import IndexRefresher
from tornado_callback.inventory.registration import HostRegistrar
from tornado_callback.inventory.service import Inventories
from tornado_callback.inventory.sync import InventorySync
from tornado_callback.jobs.executor import WorkerPool, start_workers
from tornado_callback.jobs.launch import LaunchService
from tornado_callback.jobs.sandbox import Sandbox
from tornado_callback.jobs.service import JobsService
from tornado_callback.plugin.chain import ResolverChain
from tornado_callback.plugin.manager import build_chain, make_plugin_manager
from tornado_callback.store.database import Database

# The resolver whose plugins.toml table also configures the trust anchors of signed cloud identities.
CLOUD_IDENTITY_TABLE = "cloud_metadata"


def base_url(settings: Settings) -> str:
    """The server's own URL as ``serve`` prints it."""
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.certfile else "http"
    return f"{scheme}://{host}:{settings.port}"


@dataclass
class Services:
    settings: Settings
    db: Database
    plugin_manager: pluggy.PluginManager
    chain: ResolverChain
    accounts: Accounts
    inventories: Inventories
    launcher: LaunchService
    callbacks: CallbackService
    attempts: CallbackAttempts
    # Resolves host names into the index in the background (``inventories.refresher``);
    # ``serve`` starts it.
    refresher: IndexRefresher
    inventory_sync: InventorySync
    credentials: Credentials
    jobs: JobsService
    admin: AdminService
    template_actions: TemplateActions
    identities: CloudIdentities
    # The server's secret key: credentials at rest, and keys derived from it (the console's cookies).
    secrets: SecretsBox

    @classmethod
    async def start(
        cls,
        settings: Settings,
        plugin_manager: pluggy.PluginManager | None = None,
        *,
        upgrade: bool = True,
        reindex: bool = False,
    ) -> Services:
        """Connect and bring the schema up to date.

        ``reindex`` (what ``serve`` asks for) also rebuilds the host index when
        the resolvers that fill it changed. Other commands and worker processes
        never do: run with another plugins.toml, they would rebuild the index
        the servers match against with the wrong resolvers. (An empty index
        needs no rebuild: see ``Inventories.ensure_index``.)
        """
        pm = plugin_manager or make_plugin_manager()
        chain = build_chain(pm, settings)
        # Read before anything opens: an unreadable certificate stops the server at start.
        anchors = load_anchors(settings.plugins.options(CLOUD_IDENTITY_TABLE),
                               default_audience=f"{base_url(settings)}/")
        db = Database(settings.database_url)
        try:
            if upgrade:
                await db.upgrade()
            limiter = FailureLimiter(db, Limits.from_settings(settings))
            accounts = Accounts(db, limiter, settings.auth_cache_seconds)
            inventories = Inventories(db, chain)
            await inventories.ensure_index(rebuild=reindex)
        except BaseException:
            await db.close()
            raise
        secrets = SecretsBox(settings.secret_key, settings.key_file_path)
        launcher = LaunchService(secrets)
        admin = AdminService(db, accounts, inventories, secrets, RESOURCES)
        inventory_sync = InventorySync(db, inventories, settings)
        identities = CloudIdentities(db, anchors)
        return cls(
            settings=settings,
            db=db,
            plugin_manager=pm,
            chain=chain,
            accounts=accounts,
            inventories=inventories,
            launcher=launcher,
            callbacks=CallbackService(
                db, chain, inventories, launcher, accounts, limiter, inventory_sync, identities,
                HostRegistrar(db, inventories.index_writer, settings),
            ),
            attempts=CallbackAttempts(db),
            refresher=inventories.refresher,
            inventory_sync=inventory_sync,
            credentials=Credentials(secrets),
            jobs=JobsService(db, accounts),
            admin=admin,
            template_actions=TemplateActions(admin, launcher),
            identities=identities,
            secrets=secrets,
        )

    def start_workers(self, sandbox: Sandbox | None) -> WorkerPool:
        """This process's job workers, woken at once by the jobs this process queues."""
        pool = start_workers(self.db, self.credentials, self.settings, sandbox)
        self.launcher.on_job_queued = pool.wake
        return pool

    async def close(self) -> None:
        await self.inventory_sync.close()
        await self.refresher.stop()
        await self.chain.aclose()
        await self.db.close()
