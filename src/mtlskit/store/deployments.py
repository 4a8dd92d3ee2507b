"""The ``deployments`` table: what `mtlskit deploy` wrote, so CRL changes can refresh it."""

from __future__ import annotations

import dataclasses
import datetime as dt

from mtlskit.store.inventory import Inventory, bump_change_counter


@dataclasses.dataclass(frozen=True)
class DeploymentRow:
    """One recorded deployment as stored (``options`` is the JSON text of the deploy flags)."""

    server: str
    name: str
    directory: str
    revocation: str
    reload_command: str | None
    options: str


def save_deployment(inventory: Inventory, row: DeploymentRow, at: dt.datetime) -> None:
    """Insert or update the deployment of ``row.directory`` and its "deploy" audit event,
    and move the change counter, in one transaction."""
    values = (row.server, row.name, row.revocation, row.reload_command, row.options, at)
    with inventory.transaction() as tx:
        updated = tx.execute("UPDATE deployments SET server = ?, name = ?, revocation = ?, reload_command = ?,"
                             " options = ?, updated_at = ? WHERE directory = ?", (*values, row.directory))
        if not updated:
            tx.execute("INSERT INTO deployments (server, name, revocation, reload_command, options, updated_at,"
                       " directory, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*values, row.directory, at))
        inventory.record_event("deploy", at, session=tx, server=row.server, name=row.name,
                               directory=row.directory, revocation=row.revocation)
        # what serve caches from the inventory includes the deployments (/authz's policies):
        # replicas on PostgreSQL learn of a new one through the change counter
        bump_change_counter(tx)


def all_deployments(inventory: Inventory) -> list[DeploymentRow]:
    """Every recorded deployment, oldest first."""
    with inventory.read() as tx:
        rows = tx.all("SELECT server, name, directory, revocation, reload_command, options"
                      " FROM deployments ORDER BY id")
    return [DeploymentRow(server, name, directory, revocation, reload_command, options or "{}")
            for server, name, directory, revocation, reload_command, options in rows]


def any_deployment(inventory: Inventory) -> bool:
    """Whether a deployment is recorded (one indexed read)."""
    with inventory.read() as tx:
        return tx.scalar("SELECT id FROM deployments LIMIT 1") is not None
