"""Keeping the root key off the machine: `mtlskit root export-key` and `import-key`.

The exported file is the root's key exactly as the home stores it (PKCS#8, encrypted
with the CA passphrase unless the home is a --no-passphrase lab), written 0600 to a
new file. It is removed from the home only once the copy has been read back and opens,
with the passphrase, to the key of the root certificate: nothing is lost.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mtlskit.ca.home import ROOT, CaFiles, decrypt_key
from mtlskit.errors import AlreadyExists, BadInput, KeyOffline
from mtlskit.fileio import MAX_INPUT, PRIVATE, InputRefused, read_input, write_atomic, write_new
from mtlskit.pki.keys import public_keys_match

PassphraseSource = Callable[[], "bytes | None"]


def export_root_key(ca_files: CaFiles, out: Path, passphrase_source: PassphraseSource,
                    remove: bool = False, before_remove: Callable[[], None] | None = None) -> None:
    """Copy the root key to ``out`` (a new file, 0600); with ``remove``, then delete it
    from the home once the copy verifies, after ``before_remove()`` (the last signature
    the key makes here: a fresh root CRL, so that it lasts its whole lifetime).

    Raises:
        KeyOffline: the root key is not in the home.
        AlreadyExists: ``out`` exists (it is never overwritten).
        BadInput/WrongPassphrase: the copy does not open to the root's key (nothing removed).
    """
    _refuse_token_root(ca_files)
    source = ca_files.key_path(ROOT)
    if not source.exists():
        raise KeyOffline(f"the root CA key is not on this machine ({source} is absent): nothing to export",
                         hint="`mtlskit root import-key FILE` brings an exported key back")
    if out.exists() or out.is_symlink():
        raise AlreadyExists(f"{out} already exists; the root key is never written over a file",
                            hint="give --out a new file name")
    data = source.read_bytes()
    try:
        write_new(out, data, PRIVATE)
    except FileExistsError:
        raise AlreadyExists(f"{out} already exists; the root key is never written over a file") from None
    _sync(out)
    if remove:
        check_root_key(ca_files, read_input(out, MAX_INPUT, private=True), str(out), passphrase_source)
        if before_remove is not None:
            before_remove()
        source.unlink()


def import_root_key(ca_files: CaFiles, path: Path, passphrase_source: PassphraseSource) -> None:
    """Put an exported root key back into the home (0600), once it opens to the root's key.

    Raises:
        AlreadyExists: the home already holds the root key.
        BadInput/WrongPassphrase: the file is not the key of this root.
    """
    _refuse_token_root(ca_files)
    target = ca_files.key_path(ROOT)
    if target.exists():
        raise AlreadyExists(f"the root CA key is already in the home ({target})")
    try:
        data = read_input(path, MAX_INPUT, private=True)
    except InputRefused as exc:
        raise BadInput(f"cannot read the root key file {path}: {exc}",
                       hint=f"chmod 600 {path}" if "others" in str(exc) else None) from None
    check_root_key(ca_files, data, str(path), passphrase_source)
    write_atomic(target, data, PRIVATE)


def _refuse_token_root(ca_files: CaFiles) -> None:
    """A root key in a PKCS#11 token never leaves it (and no file key takes its place)."""
    reference = ca_files.token_reference(ROOT)
    if reference is not None:
        raise BadInput(f"the root CA key is in the PKCS#11 token {reference.token.token!r} "
                       f"(label {reference.label!r}): it cannot leave the token",
                       hint="keep the token itself offline instead (an HSM the root's operations are brought to)")


def check_root_key(ca_files: CaFiles, data: bytes, where: str, passphrase_source: PassphraseSource) -> None:
    """Refuse ``data`` unless it opens (with the CA passphrase) to the key of the root certificate."""
    if b"PRIVATE KEY-----" not in data[:64]:
        raise BadInput(f"{where} is not a PEM private key")
    key = decrypt_key(data, ROOT, passphrase_source)
    root = ca_files.certificates()[ROOT]
    if not public_keys_match(key, root.public_key()):
        raise BadInput(f"{where} is not the key of this root CA ({root.subject.rfc4514_string()})")


def _sync(path: Path) -> None:
    """On disk before the home's copy may be removed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
