"""The ``deployments`` table: what `mtlskit deploy` wrote, so CRL changes can refresh it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select

from mtlskit.deploy.options import DeployOptions
from mtlskit.store.inventory import Inventory
from mtlskit.store.models import Deployment


@dataclasses.dataclass(frozen=True)
class DeploymentRecord:
    server: str
    name: str
    directory: Path
    revocation: str
    reload_command: str | None
    options: dict

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def revoked_serials_path(self) -> Path:
        return self.directory / "revoked-serials.lst"

    @property
    def client_ca_path(self) -> Path:
        return self.directory / "client-ca.pem"


def record_deployment(inventory: Inventory, options: DeployOptions, reload_command: str | None,
                      at: dt.datetime) -> DeploymentRecord:
    """Insert or update the deployment of ``options.directory`` and audit it, in one transaction."""
    directory = str(options.directory)
    with inventory.transaction() as tx:
        row = tx.scalars(select(Deployment).where(Deployment.directory == directory)).one_or_none()
        if row is None:
            row = Deployment(directory=directory, created_at=at)
            tx.add(row)
        row.server, row.name, row.revocation = options.server, options.name, options.revocation
        row.reload_command = reload_command
        row.options = json.dumps(options.to_json(), sort_keys=True)
        row.updated_at = at
        inventory.record_event("deploy", at, session=tx, server=options.server, name=options.name,
                               directory=directory, revocation=options.revocation)
    return DeploymentRecord(options.server, options.name, options.directory, options.revocation,
                            reload_command, options.to_json())


def list_deployments(inventory: Inventory) -> list[DeploymentRecord]:
    """Every recorded deployment, oldest first."""
    with inventory.transaction() as tx:
        rows = tx.scalars(select(Deployment).order_by(Deployment.id)).all()
        return [DeploymentRecord(r.server, r.name, Path(r.directory), r.revocation, r.reload_command,
                                 json.loads(r.options or "{}")) for r in rows]
