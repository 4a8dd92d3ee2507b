"""Issue one certificate whose generated key is handed back to the caller once, not left on
disk: the one workflow behind the REST API's ``POST /api/v1/certificates`` (key PEM or
PKCS#12 in the answer) and the web UI's downloads (PKCS#12 or a ``.mobileconfig``).

The same workflow as `mtlskit issue` (:func:`mtlskit.issue.workflow.issue_batch`: policy,
signing, the inventory row and its audit event, all or nothing), into a scratch directory
under the home (mode 0700, the key in it 0600) that is removed before returning, on every
path; scratch directories left by a process that died mid-issue are swept. The inventory
records no directory for the certificate (nothing to renew in place): the CA keeps the
certificate, not the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from cryptography import x509

from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest
from mtlskit.issue.workflow import issue_batch
from mtlskit.pki.encoding import load_certificates, load_private_key
from mtlskit.pki.keys import KeyType
from mtlskit.store.inventory import CertificateRecord

SCRATCH = "scratch"
STALE_SECONDS = 3600  # a scratch directory this old was left by a process that died mid-issue


@dataclasses.dataclass(frozen=True)
class Identity:
    """A certificate just issued, with its private key and chain (leaf first excluded)."""

    record: CertificateRecord
    leaf_key: object = dataclasses.field(repr=False)   # the new certificate's key (never a CA key)
    certificate: x509.Certificate
    chain: list[x509.Certificate]   # intermediates, the root excluded
    root: x509.Certificate


@dataclasses.dataclass(frozen=True)
class HandedOver:
    """A certificate just issued and the bundle files written for it, read before the scratch
    directory was removed: ``key.pem``, ``cert.pem``, ``chain.pem``, ``ca.pem`` and, when
    asked for, ``bundle.p12``."""

    record: CertificateRecord
    files: dict[str, bytes] = dataclasses.field(repr=False)


HANDED_FILES = ("key.pem", "cert.pem", "chain.pem", "ca.pem", "bundle.p12")


def issue_handed_over(service, authority, request: IssueRequest, key_type: KeyType,
                      options: BundleOptions = BundleOptions()) -> HandedOver:
    """Issue ``request`` with a fresh key of ``key_type``; the bundle (``options``) in memory.

    Raises:
        BadInput, PolicyViolation, AlreadyExists: as `mtlskit issue` (nothing is issued).
    """
    with scratch_directory(Path(service.settings.home) / SCRATCH) as scratch:
        directory = scratch / "bundle"
        [record] = issue_batch(service, authority, [request], [directory], key_type, options,
                               record_directories=False)
        files = {name: (directory / name).read_bytes() for name in HANDED_FILES if (directory / name).exists()}
    return HandedOver(record, files)


def issue_identity(service, authority, request: IssueRequest, key_type: KeyType) -> Identity:
    """Issue ``request`` with a fresh key and return key, certificate and chain.

    Raises:
        BadInput, PolicyViolation, AlreadyExists: as `mtlskit issue` (nothing is issued).
    """
    handed = issue_handed_over(service, authority, request, key_type)
    private_key = load_private_key(handed.files["key.pem"])
    certificate = load_certificates(handed.files["cert.pem"])[0]
    return Identity(handed.record, private_key, certificate, list(authority.chain), authority.root.certificate)


@contextlib.contextmanager
def scratch_directory(parent: Path) -> Iterator[Path]:
    """A fresh directory (0700) in ``parent`` (0700), removed when the block ends, however it
    ends; stale ones in ``parent`` are swept first."""
    parent.mkdir(mode=0o700, exist_ok=True)
    remove_stale(parent, time.time())
    scratch = Path(tempfile.mkdtemp(dir=parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_stale(parent: Path, now: float) -> list[str]:
    """Remove the scratch directories older than STALE_SECONDS (a key left behind by a
    process killed between signing and clean-up); their names."""
    removed = []
    for entry in os.scandir(parent):
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
        except FileNotFoundError:
            pass
    return removed
