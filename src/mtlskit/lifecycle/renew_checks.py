"""What local renewal checks before anything is signed or written (renew_files.py runs it):
each refusal names the certificate, says why, and leaves everything as it was."""

from __future__ import annotations

import datetime as dt
import os
import stat
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization

from mtlskit.errors import AlreadyExists, BadInput, PolicyViolation
from mtlskit.fileio import InputRefused, read_input
from mtlskit.issue.bundle import staging_name
from mtlskit.lifecycle import renew as workflow
from mtlskit.lifecycle.renew import Blueprint
from mtlskit.pki.keys import KeyType
from mtlskit.store.inventory import CertificateRecord


class Job(NamedTuple):
    old: CertificateRecord
    blueprint: Blueprint
    final: str          # absolute directory the files go to
    staged: str         # the staging directory beside it
    exists: bool        # final exists (swap) or not (a plain rename, as issue does)
    key_file: str | None   # --reuse-key: the key to read again
    p12_password: bytes | None  # the old bundle.pass, when bundle.p12 is to be renewed too


def prepare(old: CertificateRecord, now: dt.datetime, out: str | None, reuse_key: bool) -> Job:
    """Everything checked before anything is signed or written.

    Raises:
        PolicyViolation, BadInput, AlreadyExists: why this one cannot be renewed.
    """
    workflow.check_renewable(old, now)
    what = f"{old.name} (serial {old.serial_hex})"
    if out is None and old.directory is None:
        raise BadInput(f"{what}: no directory was recorded when it was issued, so there is "
                       "nowhere to write its successor",
                       hint="give --out DIR (a server certificate `deploy` issued is renewed by running `deploy` again)")
    final = os.path.abspath(out if out is not None else old.directory)
    exists = _check_final(what, final, out is None)
    staged = os.path.join(os.path.dirname(final), staging_name(os.path.basename(final)))
    parent = os.path.dirname(final)
    if os.path.isdir(parent) and not writable(parent):
        raise BadInput(f"{what}: cannot write beside {final} (the new files are staged in {parent})",
                       hint="run as a user who may write there, or give --out DIR")
    if os.path.lexists(staged):
        raise AlreadyExists(f"{staged} is left over from an interrupted run",
                            hint="check whether its certificate is in `mtlskit list`, then remove it")
    key_file = None
    if reuse_key:
        key_file = _check_reused_key(what, old, final if out is None else old.directory)
    else:
        _key_type(what, old.key_type)
        if exists:
            _check_key_not_encrypted(what, final)
    blueprint = workflow.blueprint_of(old)
    return Job(old, blueprint, final, staged, exists, key_file, _p12_password(what, final) if exists else None)


def writable(directory: str) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)


def _check_final(what: str, final: str, recorded: bool) -> bool:
    """True when ``final`` is an existing directory of plain files; False when missing
    (only with --out)."""
    try:
        info = os.lstat(final)
    except FileNotFoundError:
        if recorded:
            raise BadInput(f"{what}: its directory {final} is gone", hint="give --out DIR") from None
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{what}: {final} is not a directory; refusing to replace it")
    for entry in os.scandir(final):
        if not entry.is_file(follow_symlinks=False):
            raise BadInput(f"{what}: {final} holds {entry.name!r}, which is not a regular file; "
                           "renew only replaces a directory of certificate files")
    return True


def _key_type(what: str, text: str) -> KeyType:
    try:
        return KeyType(text)
    except ValueError:
        raise PolicyViolation(f"{what}: its key type {text} is not one that can be generated here",
                              hint="renew it with --reuse-key") from None


def read(what: str, path: str, private: bool = False) -> bytes:
    try:
        return read_input(path, private=private)
    except InputRefused as exc:
        raise BadInput(f"{what}: cannot use {path}: {exc}") from None


def _check_reused_key(what: str, old: CertificateRecord, directory: str | None) -> str:
    """The key.pem --reuse-key reads: present, unencrypted, and the old certificate's."""
    if directory is None:
        raise BadInput(f"{what}: --reuse-key needs the directory it was issued into, and none was recorded")
    path = os.path.join(directory, "key.pem")
    if not os.path.lexists(path):
        raise BadInput(f"{what}: --reuse-key, but {path} is missing", hint="renew it without --reuse-key")
    key = load_key(what, path, read(what, path, private=True))
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    certificate_key = workflow.blueprint_public_key(old)
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            certificate_key.public_bytes(serialization.Encoding.DER, public):
        raise BadInput(f"{what}: {path} is not the key of this certificate; refusing to reuse it",
                       hint="renew it without --reuse-key")
    return path


def load_key(what: str, path: str, data: bytes):
    if b"ENCRYPTED" in data:
        raise BadInput(f"{what}: {path} is encrypted with a password it was not given",
                       hint="decrypt it first, or issue a new certificate with --key-password")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BadInput(f"{what}: {path} is not a PEM private key") from None


def _check_key_not_encrypted(what: str, final: str) -> None:
    """A new key written unencrypted where an encrypted one was would weaken it silently."""
    path = os.path.join(final, "key.pem")
    if os.path.isfile(path) and b"ENCRYPTED" in read(what, path)[:64]:
        raise BadInput(f"{what}: {path} is encrypted with a password it was not given; "
                       "the new key would be written in clear", hint="issue a new certificate with --key-password")


def _p12_password(what: str, final: str) -> bytes | None:
    """The password to renew bundle.p12 with: bundle.pass, written when it was made."""
    if not os.path.isfile(os.path.join(final, "bundle.p12")):
        return None
    path = os.path.join(final, "bundle.pass")
    if not os.path.isfile(path):
        raise BadInput(f"{what}: {final}/bundle.p12 was made with a password it was not given",
                       hint="move bundle.p12 away, renew, then `mtlskit export` a new one")
    return read(what, path, private=True).rstrip(b"\r\n")


def check_distinct(jobs: list[Job]) -> None:
    seen: dict[str, CertificateRecord] = {}
    for job in jobs:
        if job.final in seen:
            raise BadInput(f"{job.old.name} and {seen[job.final].name} were both written to "
                           f"{job.final}; renew them one at a time, with --out for one of them")
        seen[job.final] = job.old
