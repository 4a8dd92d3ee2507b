"""`mtlskit rotate intermediate`: a new issuing intermediate, with an overlap.

1. The root (its key must be here) certifies a new intermediate, named after the next
   generation ("intermediate-2", ...), recorded in the inventory before its files appear.
2. Issuance switches to it: the registry's issuing CA is the newest intermediate.
3. The old intermediate is retired, not removed: it keeps signing its CRL and its OCSP
   responder, so its certificates can still be revoked until they expire or are renewed.
4. The new intermediate's first CRL is published, then every deployment gets the
   client-CA bundle that trusts old and new (and the CRL bundle of every CA), and its
   server is reloaded: clients of both intermediates are accepted during the overlap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable

from cryptography import x509

from mtlskit.ca.authority import Authority, create_successor
from mtlskit.ca.home import ROOT, generation_of, root_offline_hint
from mtlskit.ca.signer import Signer
from mtlskit.errors import BadInput, KeyOffline

PassphraseSource = Callable[[], "bytes | None"]


@dataclasses.dataclass(frozen=True)
class Rotation:
    """What a rotation did: the new issuing CA, the one it replaced, the CRLs published
    and what each deployment did (``mtlskit.deploy.refresh.RefreshResult``s)."""

    new: Signer
    previous: Signer
    crl_error: str | None
    deployments: list = dataclasses.field(default_factory=list)


def rotate_intermediate(service, authority: Authority, passphrase_source: PassphraseSource) -> Rotation:
    """Create the next intermediate, switch issuance to it and push the new trust.

    Raises:
        BadInput: a single-CA home (the root issues; there is no intermediate to rotate).
        KeyOffline: the root key is not on this machine (nothing is created).
        WrongPassphrase: the passphrase does not open the root key.
    """
    registry = service.ca_files.registry()
    if registry.issuing == ROOT:
        raise BadInput("this CA has no intermediate (made with --no-intermediate): the root issues, "
                       "there is nothing to rotate")
    if not authority.root.key_present:
        path = service.ca_files.key_path(ROOT)
        raise KeyOffline(f"rotating the intermediate needs the root CA key, which is not on this machine "
                         f"({path} is absent)", hint=root_offline_hint(path))
    name = registry.next_intermediate()
    now = service.clock.now()
    new = create_successor(authority.issuing.certificate, authority.root, now, name,
                           f"Intermediate {generation_of(name)}", service.settings.public_url)
    if new.certificate.subject == authority.issuing.certificate.subject:
        raise BadInput("the new intermediate's subject would equal the old one's (the CA name is too long)")
    _record_and_save(service, new, passphrase_source)
    rotated = Authority(root=authority.root, issuing=new, retired=(*authority.retired, authority.issuing))
    service.replace_authority(rotated)
    crl_error = _publish_first_crl(service, rotated, name)
    return Rotation(new, authority.issuing, crl_error, push_trust(service))


def _record_and_save(service, new: Signer, passphrase_source: PassphraseSource) -> None:
    """Inventory first, files inside the transaction (a failed write rolls the row back).
    The key is encrypted as the other CA keys are (unencrypted in a --no-passphrase home)."""
    from mtlskit.issue.issuer import record_of

    passphrase = passphrase_source() if _encrypted(service) else None
    record = record_of(new.certificate, ROOT, new.name, "intermediate-ca")
    with service.inventory.transaction() as session:
        service.inventory.add_certificates([record], service.clock.now(), action="rotate", session=session)
        service.ca_files.save_signer(new, passphrase)


def _encrypted(service) -> bool:
    return service.ca_files.key_is_encrypted(service.ca_files.registry().issuing)


def _publish_first_crl(service, authority: Authority, name: str) -> str | None:
    """The new CA's first CRL (signed by it); a routine publication does the others' as due."""
    from mtlskit.publish import crls

    due = crls.routine_names(service, authority, only_due=True)
    result = crls.publish(service, authority, sorted({name, *due.names}))
    return result.error


def push_trust(service) -> list:
    """Hand every deployment the client-CA bundle of every CA (root first) and reload it."""
    from mtlskit.deploy.refresh import refresh_trust
    from mtlskit.store.deployments import any_deployment

    if not any_deployment(service.inventory):
        return []
    return refresh_trust(service, list(service.ca_certificates().values()))


def longest_leaf_lifetime() -> dt.timedelta:
    """The longest default lifetime of the leaf profiles (client: 365 days)."""
    from mtlskit.issue.profiles import LEAF_PROFILES, PROFILES

    return dt.timedelta(days=max(PROFILES[name].default_days for name in LEAF_PROFILES))


def expiring_cas(service, longest_leaf: dt.timedelta | None = None) -> list[tuple[str, x509.Certificate, bool]]:
    """Every CA certificate, root first, with whether it is the issuing CA and expires
    before a leaf it would sign now (``not_after < now + longest_leaf``): (name, certificate, short)."""
    longest_leaf = longest_leaf if longest_leaf is not None else longest_leaf_lifetime()
    now = service.clock.now()
    registry = service.ca_files.registry()
    found = []
    for name, certificate in service.ca_certificates().items():
        short = name == registry.issuing and certificate.not_valid_after_utc < now + longest_leaf
        found.append((name, certificate, short))
    return found
