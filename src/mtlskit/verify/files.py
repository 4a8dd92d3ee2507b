"""Reading certificates and CRLs from files (PEM bundles or DER). The only I/O of verify."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from mtlskit.errors import BadInput
from mtlskit.fileio import InputRefused, read_input


def read_file(path: Path, what: str) -> bytes:
    """A regular file of at most ``fileio.MAX_INPUT`` bytes: a FIFO or a device is refused
    at once (``fileio.read_input``), so verify and probe never hang on their inputs.

    Raises:
        BadInput: missing, not a regular file, or too large.
    """
    if not os.path.lexists(path):
        raise BadInput(f"{what} file {path} does not exist")
    try:
        return read_input(path)
    except InputRefused as exc:
        raise BadInput(f"cannot read {what} file {path}: {exc}") from None


def load_certificates(path: Path, what: str = "certificate") -> list[x509.Certificate]:
    """All certificates in a PEM bundle, or the one certificate of a DER file."""
    data = read_file(path, what)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise BadInput(f"{path} does not hold a {what} in PEM or DER",
                       hint="pass a PEM file with -----BEGIN CERTIFICATE----- blocks, or a DER certificate") from None


def load_certificate(path: Path, what: str = "certificate") -> x509.Certificate:
    """The first certificate in a file (the leaf of a fullchain.pem)."""
    return load_certificates(path, what)[0]


def load_crls(path: Path) -> list[x509.CertificateRevocationList]:
    """Every CRL in a PEM file (several may be concatenated), or the CRL of a DER file."""
    data = read_file(path, "CRL")
    try:
        if b"-----BEGIN" not in data:
            return [x509.load_der_x509_crl(data)]
        marker = b"-----BEGIN X509 CRL-----"
        blocks = [marker + part for part in data.split(marker)[1:]]
        if not blocks:
            raise ValueError("no CRL block")
        return [x509.load_pem_x509_crl(block) for block in blocks]
    except ValueError:
        raise BadInput(f"{path} does not hold a CRL in PEM or DER",
                       hint="pass the file published by the CA (mtlskit crl writes one)") from None


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def parse_trust_bundle(data: bytes) -> list[x509.Certificate]:
    """The certificates of a system CA bundle that cryptography accepts without complaint.

    System bundles carry a few old roots that RFC 5280 forbids (a negative serial): the
    cryptography library warns on them today and will refuse them tomorrow. They are
    skipped one by one, so neither a warning reaches the user nor one bad root loses
    the whole store.
    """
    found = []
    for block in _PEM_CERTIFICATE.findall(data):
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            try:
                cert = x509.load_pem_x509_certificate(block)
                cert.serial_number  # parsed lazily; the warning is raised here
            except (ValueError, CryptographyDeprecationWarning):
                continue
        found.append(cert)
    return found
