"""How long does syncing a large inventory take? ``python bench/inventory_import.py [--database-url URL]``

Times the same code the CLI and the update-on-launch rule use, on a
generated inventory (default 10,000 hosts in 50 groups):
  1. first import (every host added, indexed),
  2. the same listing again (nothing changes),
  3. every host's ansible_host changed (every host updated and re-indexed),
  4. through ansible-inventory and a script source (what a real sync pays),
  5. overwrite with half the hosts gone (5,000 removed).
Without --database-url a fresh SQLite file in a temporary directory is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tornado_callback.accounts.service import LOCAL_ADMIN
from tornado_callback.cli.inventory import import_inventory
from tornado_callback.config import Settings, normalise_database_url
from tornado_callback.plugin.manager import make_plugin_manager
from tornado_callback.services import Services


def listing(hosts: int, groups: int, octet: int) -> dict[str, Any]:
    hostvars = {
        f"node{i:05d}": {"ansible_host": f"10.{octet}.{i // 256}.{i % 256}",
                         "instance_id": f"i-{i:08x}", "rack": i % 40}
        for i in range(hosts)
    }
    names = sorted(hostvars)
    data: dict[str, Any] = {"_meta": {"hostvars": hostvars}, "all": {"vars": {"dc": "bench"}}}
    for g in range(groups):
        data[f"group{g:02d}"] = {"hosts": names[g::groups], "vars": {"tier": g % 3}}
    data["everything"] = {"children": [f"group{g:02d}" for g in range(groups)]}
    return data


async def timed(label: str, run: Any) -> Any:
    started = time.perf_counter()
    update = await run
    elapsed = time.perf_counter() - started
    print(f"{label:<48} {elapsed:7.2f} s  status={update.status} added={update.hosts_added} "
          f"updated={update.hosts_updated} removed={update.hosts_removed}", flush=True)
    if update.status != "successful":
        print(update.job_explanation, update.result_stdout[:2000], file=sys.stderr)
    return update


async def main(database_url: str, hosts: int, groups: int, workdir: Path) -> None:
    settings = Settings(database_url=database_url)
    services = await Services.start(settings, make_plugin_manager([], load_entrypoints=False))
    sync = services.inventory_sync
    name = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        print(f"{hosts} hosts, {groups} groups, database {database_url.split('://')[0]}")
        await timed("1. first import (all added)", import_inventory(
            services, name, "-", json.dumps(listing(hosts, groups, 1))))
        await timed("2. same listing again (nothing changes)", import_inventory(
            services, name, "-", json.dumps(listing(hosts, groups, 1))))
        await timed("3. every ansible_host changed (all re-indexed)", import_inventory(
            services, name, "-", json.dumps(listing(hosts, groups, 2))))

        script = workdir / "inventory.py"
        (workdir / "listing.json").write_text(json.dumps(listing(hosts, groups, 3)))
        script.write_text(f"#!{sys.executable}\nimport pathlib, sys\n"
                          f"sys.stdout.write((pathlib.Path(__file__).parent / 'listing.json').read_text())\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        inventory = await services.admin.named("inventories", LOCAL_ADMIN, name)
        source = await services.admin.create("inventory_sources", LOCAL_ADMIN, {
            "inventory": inventory["id"], "name": "script", "source": "script", "source_path": str(script),
            "overwrite": True})
        await timed("4. script source via ansible-inventory", sync.update(source["id"]))

        half = listing(hosts // 2, groups, 3)
        (workdir / "listing.json").write_text(json.dumps(half))
        await timed("5. overwrite, half the hosts gone", sync.update(source["id"]))

        lookup = services.inventories.lookup(inventory["id"])
        probe = half["_meta"]["hostvars"]["node00007"]["ansible_host"]
        print(f"index lookup of {probe}: {[h.name for h in await lookup.find('address', [probe])]}")
    finally:
        await services.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = normalise_database_url(args.database_url or f"sqlite:///{tmp}/bench.db")
        asyncio.run(main(url, args.hosts, args.groups, Path(tmp)))
