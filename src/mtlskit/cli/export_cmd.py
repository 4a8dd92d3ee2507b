"""`mtlskit export p12`."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Optional

import typer

from mtlskit.cli.common import console, err_console, read_input_file, read_secret_file
from mtlskit.errors import BadInput, UsageError
from mtlskit.fileio import PRIVATE, remove_quietly, write_atomic, write_temp

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
    out: Path = typer.Option(..., "--out", help="The bundle; - for stdout (needs --password-file)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle (and its .pass file)."),
) -> None:
    """Bundle a certificate, its key and chain into a PKCS#12 file."""
    from mtlskit.pki.encoding import load_certificates, load_private_key
    from mtlskit.pki.keys import public_keys_match
    from mtlskit.pki.names import common_name_of
    from mtlskit.pki.pkcs12 import P12Profile, build_pkcs12

    to_stdout = str(out) == "-"
    password_path = None if to_stdout or password_file else out.with_name(out.name + ".pass")
    _check_outputs(out, password_file, password_path, force)
    p12_profile = P12Profile.parse(profile)
    certificates = load_certificates(read_input_file(cert, "certificate"))
    key_password = read_secret_file(key_password_file, "key password") if key_password_file else None
    private_key = load_private_key(read_input_file(key, "key"), key_password)
    if not public_keys_match(private_key, certificates[0].public_key()):
        raise BadInput(f"{key} is not the key of the certificate in {cert}")
    chain_certs = certificates[1:] + (load_certificates(read_input_file(chain, "chain")) if chain else [])
    password = read_secret_file(password_file, "password") if password_file else secrets.token_urlsafe(18).encode()
    name = common_name_of(certificates[0].subject) or "certificate"
    data = build_pkcs12(name, private_key, certificates[0], chain_certs, password, p12_profile)
    if to_stdout:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        err_console.print(f"wrote the bundle to stdout ({p12_profile.value}, {1 + len(chain_certs)} certificate(s))",
                          markup=False)
        return
    _write_outputs({password_path: password + b"\n", out: data} if password_path else {out: data}, force)
    console.print(f"wrote {out} ({p12_profile.value}, {1 + len(chain_certs)} certificate(s))", markup=False)
    if password_path:
        console.print(f"its password was generated into {password_path} (mode 0600)", markup=False)


def _check_outputs(out: Path, password_file: Path | None, password_path: Path | None, force: bool) -> None:
    """Refuse, before anything is read or written, what the export could not write as asked."""
    if str(out) == "-":
        if password_file is None:
            raise UsageError("--out - needs --password-file (a generated password would have nowhere to go)")
        if sys.stdout.isatty():
            raise UsageError("refusing to write a PKCS#12 bundle to a terminal",
                             hint="redirect stdout, or give --out FILE")
        return
    if not out.parent.is_dir():
        raise BadInput(f"directory {out.parent} does not exist", hint="create it first, or give another --out")
    for path in (out, password_path):
        if path is not None and os.path.lexists(path) and not force:
            raise BadInput(f"{path} already exists", hint="add --force to replace it")


def _write_outputs(files: dict[Path, bytes], force: bool) -> None:
    """Write each file (mode 0600); without ``force``, never over a file that appeared
    since the check (a hard link publishes the new file only where nothing is)."""
    if force:
        for path, data in files.items():
            write_atomic(path, data, PRIVATE)
        return
    written = []
    try:
        for path, data in files.items():
            _publish_new(write_temp(path, data, PRIVATE), path)
            written.append(path)
    except BaseException:
        for path in written:
            remove_quietly(path)
        raise


def _publish_new(temporary: Path, path: Path) -> None:
    """Give the complete ``temporary`` the name ``path`` only if nothing has it."""
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise BadInput(f"{path} already exists", hint="add --force to replace it") from None
        except OSError:  # a file system without hard links: check, then rename
            if os.path.lexists(path):
                raise BadInput(f"{path} already exists", hint="add --force to replace it") from None
            os.replace(temporary, path)
    finally:
        remove_quietly(temporary)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
