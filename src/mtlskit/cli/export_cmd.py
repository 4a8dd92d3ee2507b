"""`mtlskit export p12`."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Optional

import typer

from mtlskit.cli.common import console, read_input_file, read_secret_file
from mtlskit.errors import BadInput
from mtlskit.fileio import PRIVATE, write_atomic

# Implementation modules are imported inside the commands (see cli/issue_cmd.py).

export_app = typer.Typer(help="Export bundles.", no_args_is_help=True)


@export_app.command("p12")
def export_p12(
    cert: Path = typer.Option(..., "--cert"),
    key: Path = typer.Option(..., "--key"),
    chain: Optional[Path] = typer.Option(None, "--chain"),
    profile: str = typer.Option("modern", "--profile", help="modern (AES-256) | legacy (3DES, for iOS/macOS)"),
    password_file: Optional[Path] = typer.Option(None, "--password-file"),
    key_password_file: Optional[Path] = typer.Option(None, "--key-password-file"),
    out: Path = typer.Option(..., "--out"),
) -> None:
    """Bundle a certificate, its key and chain into a PKCS#12 file."""
    from mtlskit.pki.encoding import load_certificates, load_private_key
    from mtlskit.pki.keys import public_keys_match
    from mtlskit.pki.names import common_name_of
    from mtlskit.pki.pkcs12 import P12Profile, build_pkcs12

    p12_profile = P12Profile.parse(profile)
    certificates = load_certificates(read_input_file(cert, "certificate"))
    key_password = read_secret_file(key_password_file, "key password") if key_password_file else None
    private_key = load_private_key(read_input_file(key, "key"), key_password)
    if not public_keys_match(private_key, certificates[0].public_key()):
        raise BadInput(f"{key} is not the key of the certificate in {cert}")
    chain_certs = certificates[1:] + (load_certificates(read_input_file(chain, "chain")) if chain else [])
    password_path = None
    if password_file:
        password = read_secret_file(password_file, "password")
    else:
        password = secrets.token_urlsafe(18).encode()
        password_path = out.with_name(out.name + ".pass")
    name = common_name_of(certificates[0].subject) or "certificate"
    data = build_pkcs12(name, private_key, certificates[0], chain_certs, password, p12_profile)
    if password_path:
        write_atomic(password_path, password + b"\n", PRIVATE)
    write_atomic(out, data, PRIVATE)
    console.print(f"wrote {out} ({p12_profile.value}, {1 + len(chain_certs)} certificate(s))")
    if password_path:
        console.print(f"its password was generated into {password_path} (mode 0600)")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
