"""The inventory aggregates of ``/metrics``: a few GROUP BY queries whose result size
depends on the profiles, CAs and deployments, never on the number of certificates."""

from __future__ import annotations

import dataclasses
import datetime as dt

from mtlskit.store.sql import Database, utc

# The state of a certificate at ``now``, derived from its dates (the stored status says
# only valid or revoked): revoked, expired, superseded (renewed, not yet expired),
# expiring (within the window, not renewed) or valid.
_STATE = """CASE WHEN status = 'revoked' THEN 'revoked'
                 WHEN not_after <= ? THEN 'expired'
                 WHEN superseded_by IS NOT NULL THEN 'superseded'
                 WHEN not_after <= ? THEN 'expiring'
                 ELSE 'valid' END"""
_CERTIFICATES = f"""SELECT profile, {_STATE} AS state, COUNT(*), MIN(not_after)
                    FROM certificates GROUP BY profile, state"""
# The certificate of a deployment: the newest one of its name that is neither revoked nor
# renewed (what deploy installed, or the agent since).
_DEPLOYMENTS = """SELECT d.server, d.name, d.directory, MAX(c.not_after)
                  FROM deployments d LEFT JOIN certificates c
                    ON c.name = d.name AND c.status <> 'revoked' AND c.superseded_by IS NULL
                   AND c.profile IN ('server', 'peer')
                  GROUP BY d.id, d.server, d.name, d.directory"""
_CRLS = "SELECT issuer, next_update FROM crl_state WHERE next_update IS NOT NULL"


@dataclasses.dataclass(frozen=True)
class CertificateGroup:
    profile: str
    state: str          # revoked | expired | superseded | expiring | valid
    count: int
    soonest_expiry: dt.datetime


@dataclasses.dataclass(frozen=True)
class DeploymentExpiry:
    server: str
    name: str
    directory: str
    expiry: dt.datetime | None   # None: no current certificate of that name in the inventory


@dataclasses.dataclass(frozen=True)
class InventoryAggregates:
    certificates: list[CertificateGroup]
    deployments: list[DeploymentExpiry]
    crl_next_updates: dict[str, dt.datetime]


def inventory_aggregates(db: Database, now: dt.datetime, expiring_within: dt.timedelta) -> InventoryAggregates:
    """Counts by profile and state, each deployment's certificate expiry and each CA's CRL
    nextUpdate, in one consistent read."""
    with db.read() as tx:
        groups = tx.all(_CERTIFICATES, (now, now + expiring_within))
        deployments = tx.all(_DEPLOYMENTS)
        crls = tx.all(_CRLS)
    return InventoryAggregates(
        [CertificateGroup(profile, state, int(count), utc(soonest)) for profile, state, count, soonest in groups],
        [DeploymentExpiry(server, name, directory, utc(expiry)) for server, name, directory, expiry in deployments],
        {issuer: utc(next_update) for issuer, next_update in crls})
