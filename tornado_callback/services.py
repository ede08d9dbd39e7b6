"""Services: the one object that handlers and commands receive.

Built by ``Services.start`` from settings; carries the database, the plugin
manager and the resolver chain. No module-level state anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import pluggy

from tornado_callback.accounts import Accounts
from tornado_callback.admin.catalog import RESOURCES
from tornado_callback.admin.sealing import make_sealer
from tornado_callback.admin.service import AdminService
from tornado_callback.admin.template_actions import TemplateActions
from tornado_callback.audit import Records
from tornado_callback.callbacks import CallbackService
from tornado_callback.config import Settings
from tornado_callback.inventories import Inventories
from tornado_callback.launch import LaunchService
from tornado_callback.plugins import build_chain, make_plugin_manager
from tornado_callback.ratelimit import BadKeyLimiter
from tornado_callback.resolution import ResolverChain
from tornado_callback.store.database import Database
from tornado_callback.templates import Templates


@dataclass
class Services:
    settings: Settings
    db: Database
    plugin_manager: pluggy.PluginManager
    chain: ResolverChain
    accounts: Accounts
    inventories: Inventories
    templates: Templates
    launcher: LaunchService
    callbacks: CallbackService
    records: Records
    admin: AdminService
    template_actions: TemplateActions

    @classmethod
    async def start(
        cls,
        settings: Settings,
        plugin_manager: pluggy.PluginManager | None = None,
        *,
        upgrade: bool = True,
    ) -> Services:
        """Connect, bring the schema up to date, and rebuild the host index if the resolvers changed."""
        pm = plugin_manager or make_plugin_manager()
        chain = build_chain(pm, settings)
        db = Database(settings.database_url)
        try:
            if upgrade:
                await db.upgrade()
            accounts = Accounts(db, settings.auth_cache_seconds)
            inventories = Inventories(db, chain)
            await inventories.ensure_index()
        except BaseException:
            await db.close()
            raise
        launcher = LaunchService()
        admin = AdminService(db, accounts, inventories, make_sealer(settings.secret_key), RESOURCES)
        limiter = BadKeyLimiter(settings.bad_key_limit, settings.bad_key_window)
        return cls(
            settings=settings,
            db=db,
            plugin_manager=pm,
            chain=chain,
            accounts=accounts,
            inventories=inventories,
            templates=Templates(db),
            launcher=launcher,
            callbacks=CallbackService(db, chain, inventories, launcher, accounts, limiter),
            records=Records(db),
            admin=admin,
            template_actions=TemplateActions(admin, launcher),
        )

    async def close(self) -> None:
        await self.db.close()
