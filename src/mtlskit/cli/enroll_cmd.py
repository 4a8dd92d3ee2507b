"""`mtlskit enroll`: get a certificate from a remote `mtlskit serve --tls-port` with a
single-use token; the key is generated here and never leaves this host. Also the remote
side of `mtlskit renew --ca-url URL --cert-dir DIR` (:func:`renew_remote_command`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mtlskit.cli.common import console, print_json, read_secret_file
from mtlskit.errors import UsageError

MAX_TOKEN_BYTES = 256


def enroll(
    ca_url: str = typer.Option(..., "--ca-url", help="https://HOST:PORT of `mtlskit serve --tls-port`."),
    fingerprint: str = typer.Option(..., "--fingerprint",
                                    help="SHA-256 fingerprint of the CA's root (hex, colons allowed): the "
                                         "only thing trusted at first; the token is sent only once it matches."),
    out: Path = typer.Option(..., "--out", help="Directory to write key.pem (0600), cert.pem, chain.pem, "
                                                "fullchain.pem, ca.pem into (must not exist or be empty)."),
    token: Optional[str] = typer.Option(None, "--token",
                                        help="The enrollment token, or - to read it from stdin. A token in the "
                                             "arguments is visible to other users in `ps`: prefer --token-file "
                                             "or -."),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="File (0600) holding the token."),
    key_type: str = typer.Option("ec-p256", "--key-type", help="Key made here: ec-p256, ec-p384, rsa-2048, ..."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Enroll: check the CA's root fingerprint, make a key here, send a CSR with the token,
    write the same files as `mtlskit issue`."""
    from mtlskit.lifecycle.remote import enroll_remote
    from mtlskit.pki.keys import KeyType

    secret = _token(token, token_file)
    issued = enroll_remote(ca_url, secret, fingerprint, out, key_type=KeyType.parse(key_type))
    if json_out:
        print_json({"name": issued.name, "serial": issued.serial, "not_after": issued.not_after,
                    "directory": str(issued.directory)})
    else:
        console.print(f"enrolled {issued.name} (serial {issued.serial}, valid until {issued.not_after}) into "
                      f"{issued.directory}/", markup=False, highlight=False)


def _token(token: str | None, token_file: Path | None) -> str:
    """The token from --token, stdin (-) or --token-file; never echoed in an error."""
    if (token is None) == (token_file is None):
        raise UsageError("give the token with exactly one of --token-file FILE, --token - (stdin) or --token T")
    if token_file is not None and str(token_file) != "-":
        value = read_secret_file(token_file, "token").decode("utf-8", "replace")
    elif token == "-" or str(token_file) == "-":
        value = sys.stdin.readline(MAX_TOKEN_BYTES + 1)
    else:
        value = token
    value = value.strip()
    if not value or len(value) > MAX_TOKEN_BYTES or not value.isprintable():
        raise UsageError("the token is empty, too long or not printable",
                         hint="paste the last line `mtlskit token create` printed")
    return value


def renew_remote_command(ca_url: str, cert_dir: Path, json_out: bool) -> None:
    """`mtlskit renew --ca-url URL --cert-dir DIR` (called by the renew command)."""
    from mtlskit.lifecycle.remote import renew_remote

    issued = renew_remote(ca_url, cert_dir)
    if json_out:
        print_json({"name": issued.name, "serial": issued.serial, "previous_serial": issued.previous_serial,
                    "not_after": issued.not_after, "directory": str(issued.directory)})
    else:
        console.print(f"renewed {issued.name}: serial {issued.previous_serial} -> {issued.serial} (valid until "
                      f"{issued.not_after}); previous files kept as *.prev in {issued.directory}/",
                      markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("enroll")(enroll)
