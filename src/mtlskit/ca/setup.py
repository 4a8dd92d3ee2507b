"""`mtlskit init`: a new CA home with its hierarchy, settings and inventory."""

from __future__ import annotations

import ipaddress
from typing import Mapping

from mtlskit.ca.authority import Authority, CaRequest, create_authority
from mtlskit.ca.home import CaFiles
from mtlskit.clock import Clock
from mtlskit.config import Settings, write_settings_file
from mtlskit.errors import AlreadyExists, BadInput
from mtlskit.fileio import make_private_dir
from mtlskit.issue.issuer import record_of
from mtlskit.pki.names import looks_like_hostname
from mtlskit.store.inventory import Inventory

MIN_PASSPHRASE = 8
ROOT_CRL_DAYS = Settings.__dataclass_fields__["root_crl_days"].default


def initialize(settings: Settings, request: CaRequest, passphrase: bytes | None,
               clock: Clock, subject_defaults: Mapping[str, str] | None = None) -> Authority:
    """Create root (+ intermediate), write them with encrypted keys, record them.

    Args:
        passphrase: encrypts the CA keys; None only for an explicit --no-passphrase lab CA.
        subject_defaults: the ``[subject]`` table written to mtlskit.toml (defaults of the
            subject fields of the certificates this CA issues).

    Raises:
        AlreadyExists: the home already holds a CA (it is never overwritten).
        BadInput: passphrase too short, days out of range.
    """
    ca_files = CaFiles(settings.ca_dir)
    if ca_files.exists():
        raise AlreadyExists(f"a CA already exists in {settings.home}",
                            hint="use another --home, or remove that directory yourself")
    check_request(request)
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
        raise BadInput(f"the CA passphrase must be at least {MIN_PASSPHRASE} characters")
    authority = create_authority(request, clock.now())
    make_private_dir(settings.home)   # 0700, its missing parents 0755, whatever the umask
    inventory = Inventory.open(settings.database_url)
    ca_records = [record_of(authority.root.certificate, "root", authority.root.name, "root-ca")]
    if authority.issuing is not authority.root:
        ca_records.append(record_of(authority.issuing.certificate, "root", authority.issuing.name,
                                    "intermediate-ca"))
    with inventory.transaction() as tx:
        inventory.add_certificates(ca_records, clock.now(), action="init", session=tx)
        # Files last, inside the transaction: if writing fails, the rows roll back too.
        chosen = {"database_url": None if settings.default_database else settings.database_url,
                  "public_url": request.public_url,
                  "root_crl_days": settings.root_crl_days if settings.root_crl_days != ROOT_CRL_DAYS else None}
        if any(value is not None for value in chosen.values()) or subject_defaults:
            write_settings_file(settings, chosen, subject_defaults)
        ca_files.save(authority, passphrase)
    inventory.engine.dispose()
    return authority


def check_request(request: CaRequest) -> None:
    """Refuse impossible CA requests before any key is generated."""
    if not request.name.strip():
        raise BadInput("--name must not be empty")
    if not 1 <= request.root_days <= 36500 or not 1 <= request.intermediate_days <= 36500:
        raise BadInput("--root-days and --intermediate-days must be between 1 and 36500")
    if request.intermediate and request.intermediate_days > request.root_days:
        raise BadInput("the intermediate cannot outlive the root: lower --intermediate-days")
    for cidr in request.permit_ip:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise BadInput(f"--permit-ip {cidr!r} is not a network in CIDR form (e.g. 10.0.0.0/8)") from None
    for domain in request.permit_dns:
        if not looks_like_hostname(domain.lstrip(".")) and "." in domain.strip("."):
            raise BadInput(f"--permit-dns {domain!r} is not a DNS domain")
