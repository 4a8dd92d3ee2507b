"""Issue one certificate whose key is handed back to the caller, not left on disk: what
the web UI (and any adapter that returns a generated key once) downloads as PKCS#12 or a
``.mobileconfig``.

The same workflow as `mtlskit issue` (:func:`mtlskit.issue.workflow.issue_batch`: policy,
signing, the inventory row and its audit event, all or nothing), into a scratch directory
under the home (mode 0700) that is removed before returning; the inventory records no
directory for it (nothing to renew in place). The CA keeps the certificate, not the key.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

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


def issue_identity(service, authority, request: IssueRequest, key_type: KeyType) -> Identity:
    """Issue ``request`` with a fresh key and return key, certificate and chain.

    Raises:
        BadInput, PolicyViolation, AlreadyExists: as `mtlskit issue` (nothing is issued).
    """
    parent = Path(service.settings.home) / SCRATCH
    parent.mkdir(mode=0o700, exist_ok=True)
    remove_stale(parent, time.time())
    scratch = Path(tempfile.mkdtemp(dir=parent))
    try:
        directory = scratch / "bundle"
        [record] = issue_batch(service, authority, [request], [directory], key_type, BundleOptions(),
                               record_directories=False)
        private_key = load_private_key((directory / "key.pem").read_bytes())
        certificate = load_certificates((directory / "cert.pem").read_bytes())[0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Identity(record, private_key, certificate, list(authority.chain), authority.root.certificate)


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
