"""`mtlskit init`: a new CA home with its hierarchy, settings and inventory."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Mapping

from mtlskit.ca.authority import Authority, CaRequest, create_authority, file_key
from mtlskit.ca.home import CaFiles
from mtlskit.clock import Clock
from mtlskit.config import Settings, write_settings_file
from mtlskit.errors import AlreadyExists, BadInput
from mtlskit.fileio import make_private_dir
from mtlskit.issue.issuer import record_of
from mtlskit.pki.names import looks_like_hostname
from mtlskit.store.inventory import Inventory

if TYPE_CHECKING:
    from mtlskit.ca.pkcs11 import TokenConfig

MIN_PASSPHRASE = 8
KEY_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,32}\Z")
ROOT_CRL_DAYS = Settings.__dataclass_fields__["root_crl_days"].default


def initialize(settings: Settings, request: CaRequest, passphrase: bytes | None,
               clock: Clock, subject_defaults: Mapping[str, str] | None = None,
               token: TokenConfig | None = None, key_prefix: str = "mtlskit") -> Authority:
    """Create root (+ intermediate), write them with encrypted keys, record them.

    Args:
        passphrase: encrypts the CA keys; None only for an explicit --no-passphrase lab CA
            (or keys in a token).
        subject_defaults: the ``[subject]`` table written to mtlskit.toml (defaults of the
            subject fields of the certificates this CA issues).
        token: create the CA keys inside this PKCS#11 token (labelled "<key_prefix>-root",
            "<key_prefix>-intermediate") instead of in files.

    Raises:
        AlreadyExists: the home already holds a CA (it is never overwritten).
        BadInput: passphrase too short, days out of range; a wrong module, token or PIN,
            or a token that already holds keys of these labels.
    """
    ca_files = CaFiles(settings.ca_dir)
    if ca_files.exists():
        raise AlreadyExists(f"a CA already exists in {settings.home}",
                            hint="use another --home, or remove that directory yourself")
    check_request(request)
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
        raise BadInput(f"the CA passphrase must be at least {MIN_PASSPHRASE} characters")
    if token is None:
        return _create(settings, ca_files, request, passphrase, clock, subject_defaults, file_key)
    from mtlskit.ca import pkcs11

    session, labels = _prepare_token(token, request, key_prefix)
    try:
        return _create(settings, ca_files, request, None, clock, subject_defaults,
                       lambda key_type, name: pkcs11.generate_key(session, key_type, pkcs11.key_label(key_prefix, name)))
    except BaseException:
        pkcs11.destroy_keys(session, labels)  # nothing left behind in the token either
        raise


def _prepare_token(token: TokenConfig, request: CaRequest, key_prefix: str):
    """A logged-in session on the token, and the labels of the keys to create, once
    every check passed (module, token, PIN file and PIN, key type, free labels)."""
    from mtlskit.ca import pkcs11

    if request.key_type not in pkcs11.TOKEN_KEY_TYPES:
        raise BadInput(f"--key-type {request.key_type.value} cannot be kept in a PKCS#11 token here",
                       hint="choose ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096")
    if not KEY_PREFIX.match(key_prefix):
        raise BadInput(f"--pkcs11-key-prefix {key_prefix[:40]!r} must be 1-32 letters, digits, '.', '_' or '-'")
    session = pkcs11.open_token(token)
    names = ["root", "intermediate"] if request.intermediate else ["root"]
    labels = [pkcs11.key_label(key_prefix, name) for name in names]
    taken = pkcs11.labels_in_use(session, labels)
    if taken:
        raise BadInput(f"the PKCS#11 token {token.token!r} already holds keys labelled {', '.join(taken)}",
                       hint="choose another --pkcs11-key-prefix, or remove those keys from the token")
    return session, labels


def _create(settings: Settings, ca_files: CaFiles, request: CaRequest, passphrase: bytes | None,
            clock: Clock, subject_defaults: Mapping[str, str] | None, new_key) -> Authority:
    authority = create_authority(request, clock.now(), new_key)
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
    inventory.close()
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
