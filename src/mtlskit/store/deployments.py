"""The ``deployments`` table: what `mtlskit deploy` wrote, so CRL changes can refresh it."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select

from mtlskit.store.inventory import Inventory
from mtlskit.store.models import Deployment


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
    in one transaction."""
    with inventory.transaction() as tx:
        stored = tx.scalars(select(Deployment).where(Deployment.directory == row.directory)).one_or_none()
        if stored is None:
            stored = Deployment(directory=row.directory, created_at=at)
            tx.add(stored)
        stored.server, stored.name, stored.revocation = row.server, row.name, row.revocation
        stored.reload_command, stored.options, stored.updated_at = row.reload_command, row.options, at
        inventory.record_event("deploy", at, session=tx, server=row.server, name=row.name,
                               directory=row.directory, revocation=row.revocation)


def all_deployments(inventory: Inventory) -> list[DeploymentRow]:
    """Every recorded deployment, oldest first."""
    with inventory.transaction() as tx:
        rows = tx.scalars(select(Deployment).order_by(Deployment.id)).all()
        return [DeploymentRow(r.server, r.name, r.directory, r.revocation, r.reload_command, r.options or "{}")
                for r in rows]


def any_deployment(inventory: Inventory) -> bool:
    """Whether a deployment is recorded (one indexed read)."""
    with inventory.transaction() as tx:
        return tx.scalar(select(Deployment.id).limit(1)) is not None
