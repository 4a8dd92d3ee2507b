"""`mtlskit init`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mtlskit.cli.common import (console, country_option, exclusive, locality_option, org_option, org_unit_option,
                                passphrase_source, settings_of, state_option, subject_options)
from mtlskit.clock import SystemClock
from mtlskit.config import ROOT_CRL_DAYS_MAX
from mtlskit.errors import UsageError

# Implementation modules are imported inside the commands (see cli/issue_cmd.py).


def init(
    ctx: typer.Context,
    name: str = typer.Option("mtlskit CA", "--name", help="Name of the CA (used in the CA subjects)."),
    key_type: str = typer.Option("ec-p256", "--key-type", help="ec-p256|ec-p384|rsa-2048|rsa-3072|rsa-4096|ed25519"),
    no_intermediate: bool = typer.Option(False, "--no-intermediate", help="Single CA: the root issues leaves."),
    root_days: int = typer.Option(3650, "--root-days"),
    intermediate_days: int = typer.Option(1825, "--intermediate-days"),
    permit_dns: List[str] = typer.Option([], "--permit-dns", help="Name constraint: permitted DNS domain (repeatable)."),
    permit_ip: List[str] = typer.Option([], "--permit-ip", help="Name constraint: permitted network, CIDR (repeatable)."),
    permit_email: List[str] = typer.Option([], "--permit-email", help="Name constraint: permitted mail domain (repeatable)."),
    passphrase_file: Optional[Path] = typer.Option(None, "--passphrase-file", help="File whose first line encrypts the CA keys."),
    no_passphrase: bool = typer.Option(False, "--no-passphrase", help="Leave the CA keys unencrypted (labs only)."),
    public_url: Optional[str] = typer.Option(None, "--public-url", help="Where `mtlskit serve` is reachable: adds CRL DP and OCSP AIA to certificates."),
    country: Optional[str] = country_option(),
    state: Optional[str] = state_option(),
    locality: Optional[str] = locality_option(),
    org: Optional[str] = org_option(),
    org_unit: Optional[str] = org_unit_option(),
    root_crl_days: Optional[int] = typer.Option(None, "--root-crl-days", min=1, max=ROOT_CRL_DAYS_MAX,
                                                help="Lifetime of the root's CRL, kept in mtlskit.toml (default 365: the root key can stay offline)."),
    pkcs11_module: Optional[Path] = typer.Option(None, "--pkcs11-module", help="Create the CA keys inside an HSM: its PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so)."),
    pkcs11_token: Optional[str] = typer.Option(None, "--pkcs11-token", help="Label of the token that keeps the CA keys."),
    pkcs11_pin_file: Optional[Path] = typer.Option(None, "--pkcs11-pin-file", help="File (0600) whose first line is the token's user PIN; the home records its path."),
    pkcs11_key_prefix: str = typer.Option("mtlskit", "--pkcs11-key-prefix", help="The keys are labelled PREFIX-root, PREFIX-intermediate in the token."),
) -> None:
    """Create a CA: a root and an issuing intermediate, keys encrypted at rest.

    --country, --state, --locality, --org and --org-unit go into the CA subjects; all but
    --org-unit also become the defaults of issued certificates ([subject] in mtlskit.toml).
    """
    from mtlskit.ca.authority import CaRequest
    from mtlskit.ca.setup import check_request, initialize
    from mtlskit.pki.keys import KeyType

    exclusive(**{"--passphrase-file": passphrase_file, "--no-passphrase": no_passphrase})
    token = _token_config(pkcs11_module, pkcs11_token, pkcs11_pin_file)
    if token is not None:
        exclusive(**{"--pkcs11-module": True, "--passphrase-file": passphrase_file})
        exclusive(**{"--pkcs11-module": True, "--no-passphrase": no_passphrase})
    settings = settings_of(ctx, public_url=public_url, root_crl_days=root_crl_days)
    subject = subject_options(ctx, country=country, state=state, locality=locality, org=org, org_unit=org_unit)
    request = CaRequest(name=name, key_type=KeyType.parse(key_type), intermediate=not no_intermediate,
                        root_days=root_days, intermediate_days=intermediate_days,
                        permit_dns=tuple(permit_dns), permit_ip=tuple(permit_ip),
                        permit_email=tuple(permit_email), public_url=settings.public_url,
                        subject_fields=tuple(subject.attributes()))
    check_request(request)  # refuse bad flags before asking for a passphrase
    if token is not None:  # the keys stay in the token: no passphrase
        _created(settings, initialize(settings, request, None, SystemClock(), _defaults(subject), token,
                                      pkcs11_key_prefix))
        console.print(f"the CA keys are in the PKCS#11 token {token.token!r} (labels {pkcs11_key_prefix}-*): "
                      "sensitive, never extractable", markup=False)
        return
    passphrase = None if no_passphrase else passphrase_source(passphrase_file, confirm=True)()
    if passphrase is None and not no_passphrase:
        raise UsageError("no passphrase for the CA keys",
                         hint="set MTLSKIT_CA_PASSPHRASE, give --passphrase-file, or --no-passphrase for a lab CA")
    _created(settings, initialize(settings, request, passphrase, SystemClock(), _defaults(subject)))
    if no_passphrase:
        console.print("warning: the CA keys are NOT encrypted (--no-passphrase); use this for labs only",
                      style="yellow")


def _defaults(subject) -> dict:
    """The [subject] defaults of issued certificates: the CA subject's fields but --org-unit."""
    return {field: value for field, value in subject.as_dict().items() if field != "org_unit"}


def _token_config(module: Optional[Path], token: Optional[str], pin_file: Optional[Path]):
    """The PKCS#11 token for the CA keys: all three options or none."""
    given = {"--pkcs11-module": module, "--pkcs11-token": token, "--pkcs11-pin-file": pin_file}
    if not any(value is not None for value in given.values()):
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise UsageError(f"{', '.join(missing)} missing: --pkcs11-module, --pkcs11-token and "
                         "--pkcs11-pin-file go together")
    from mtlskit.ca.pkcs11 import TokenConfig

    return TokenConfig(module.absolute(), token, pin_file.absolute())


def _created(settings, authority) -> None:
    console.print(f"CA created in {settings.home}")
    for signer in {authority.root.name: authority.root, authority.issuing.name: authority.issuing}.values():
        console.print(f"  {signer.name:<13} {signer.certificate.subject.rfc4514_string()}  "
                      f"(until {signer.certificate.not_valid_after_utc:%Y-%m-%d})")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
