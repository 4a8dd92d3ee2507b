"""The files of one issued certificate, written into a directory of their own.

    key.pem        private key, PKCS#8, mode 0600 (encrypted when a password is given)
    cert.pem       the certificate
    chain.pem      the issuing intermediate(s)
    fullchain.pem  cert + chain (what servers serve)
    ca.pem         the root (what peers trust)
    bundle.p12     key + cert + chain, with --p12
    bundle.pass    the PKCS#12 password, 0600, when mtlskit generated it
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.fileio import PRIVATE, PUBLIC, PUBLIC_DIR, write_new
from mtlskit.pki.keys import private_key_pem
from mtlskit.pki.pkcs12 import P12Profile, build_pkcs12


@dataclasses.dataclass(frozen=True)
class BundleOptions:
    key_password: bytes | None = None
    p12: bool = False
    p12_profile: P12Profile = P12Profile.MODERN
    p12_password: bytes | None = None   # None: a random one per bundle, saved to bundle.pass


@dataclasses.dataclass(frozen=True)
class ChainPems:
    """The CA parts every bundle of one issuer shares, encoded once.

    With `shared_dir` set, chain.pem and ca.pem are hard links to one copy there instead
    of new files: on a large batch, creating inodes is most of the cost of a bundle.
    """

    chain: bytes
    root: bytes
    chain_certificates: tuple[x509.Certificate, ...]
    shared_dir: Path | None = None

    @classmethod
    def of(cls, chain: list[x509.Certificate], root: x509.Certificate) -> "ChainPems":
        pem = serialization.Encoding.PEM
        return cls(b"".join(c.public_bytes(pem) for c in chain), root.public_bytes(pem), tuple(chain))

    def shared_in(self, directory: Path) -> "ChainPems":
        """A copy whose bundles link to chain.pem and ca.pem written once into `directory`
        (an empty directory that the caller removes after the batch)."""
        write_new(directory / "chain.pem", self.chain, PUBLIC)
        write_new(directory / "ca.pem", self.root, PUBLIC)
        return dataclasses.replace(self, shared_dir=directory)

    def place(self, dir_fd: int, file_name: str, data: bytes) -> None:
        if self.shared_dir is not None:
            try:
                os.link(os.path.join(self.shared_dir, file_name), file_name, dst_dir_fd=dir_fd)
                return
            except OSError:  # a filesystem without hard links: write a copy
                pass
        write_new(file_name, data, PUBLIC, dir_fd=dir_fd)


def staging_name(name: str) -> str:
    """The name of the hidden directory a bundle is written into before it is published."""
    return f".{name}.partial"


def staging_dir(final: Path) -> Path:
    return final.parent / staging_name(final.name)


def write_bundle(directory: Path | str, name: str, private_key, cert_pem: bytes, chain: ChainPems,
                 options: BundleOptions, parent_fd: int | None = None) -> None:
    """Write every file of the bundle into `directory`, which must not exist yet.

    With `parent_fd`, `directory` is a name inside that open directory (batch issuance
    opens the output directory once instead of resolving its path for every bundle).
    """
    os.mkdir(directory, PUBLIC_DIR, dir_fd=parent_fd)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    try:
        os.fchmod(dir_fd, PUBLIC_DIR)   # whatever the umask
        write_new("key.pem", private_key_pem(private_key, options.key_password), PRIVATE, dir_fd)
        write_new("cert.pem", cert_pem, PUBLIC, dir_fd)
        chain.place(dir_fd, "chain.pem", chain.chain)
        write_new("fullchain.pem", cert_pem + chain.chain, PUBLIC, dir_fd)
        chain.place(dir_fd, "ca.pem", chain.root)
        if options.p12:
            _write_p12(dir_fd, name, private_key, x509.load_pem_x509_certificate(cert_pem), chain, options)
    finally:
        os.close(dir_fd)


def _write_p12(dir_fd: int, name: str, private_key, certificate: x509.Certificate,
               chain: ChainPems, options: BundleOptions) -> None:
    password = options.p12_password
    if password is None:
        password = secrets.token_urlsafe(18).encode()
        write_new("bundle.pass", password + b"\n", PRIVATE, dir_fd)
    p12 = build_pkcs12(name, private_key, certificate, list(chain.chain_certificates),
                       password, options.p12_profile)
    write_new("bundle.p12", p12, PRIVATE, dir_fd)


def publish_staged(staged: Path | str, final: Path | str, dir_fd: int | None = None) -> None:
    """Move a finished bundle into place, in one rename(2): it replaces an empty directory
    and refuses anything else (POSIX), so there is nothing to check or remove first.

    With `dir_fd`, both are names inside that open directory.
    """
    os.rename(staged, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def discard_staged(staged: Path | str, dir_fd: int | None = None) -> None:
    shutil.rmtree(staged, ignore_errors=True, dir_fd=dir_fd)
