"""The ``deployments`` table: what `mtlskit deploy` wrote, so CRL changes can refresh it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from mtlskit.deploy.options import DeployOptions
from mtlskit.store.deployments import DeploymentRow, all_deployments, save_deployment
from mtlskit.store.inventory import Inventory


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
    save_deployment(inventory, DeploymentRow(options.server, options.name, str(options.directory),
                                             options.revocation, reload_command,
                                             json.dumps(options.to_json(), sort_keys=True)), at)
    return DeploymentRecord(options.server, options.name, options.directory, options.revocation,
                            reload_command, options.to_json())


def list_deployments(inventory: Inventory) -> list[DeploymentRecord]:
    """Every recorded deployment, oldest first."""
    return [DeploymentRecord(r.server, r.name, Path(r.directory), r.revocation, r.reload_command,
                             json.loads(r.options)) for r in all_deployments(inventory)]
