"""The delegated OCSP responder of each CA (RFC 6960 §4.2.2.2).

Responses are never signed with a CA key: each CA certifies a short-lived responder
key (EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck so relying parties need not check
the responder's own status, RFC 6960 §4.2.2.2.1). The responder certificate is
renewed once 2/3 of its life has passed, like step-ca renews leaf certificates.
Its key is kept unencrypted, mode 0600, under ``home/ocsp/`` so that the responder
can sign without the CA passphrase; it is only worth a week of OCSP answers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.clock import Clock
from mtlskit.errors import BadInput
from mtlskit.fileio import PRIVATE, PUBLIC, make_private_dir, write_atomic
from mtlskit.pki.keys import KeyType, generate_private_key, private_key_pem, public_keys_match
from mtlskit.publish.ocsp import ResponderKey
from mtlskit.store.locks import RESPONDERS, cluster_lock

RESPONDER_LIFETIME = dt.timedelta(days=7)
RENEW_AT_FRACTION = 2 / 3
BACKDATE = dt.timedelta(minutes=5)  # tolerate relying parties whose clocks run a little slow


def build_responder_certificate(ca, responder_public_key, now: dt.datetime,
                                lifetime: dt.timedelta = RESPONDER_LIFETIME) -> x509.Certificate:
    """Certify ``responder_public_key`` as the OCSP responder of the CA. Pure.

    Args:
        ca: the CA's :class:`mtlskit.ca.signer.Signer` (its ``certificate`` and
            ``sign_certificate``): the CA whose certificates the responder answers for.
        responder_public_key: the responder's key.
        now: the issuance time; notBefore is ``now`` minus 5 minutes.
        lifetime: validity from ``now``.
    """
    ca_certificate = ca.certificate
    common_name = _common_name(ca_certificate)
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} OCSP Responder")]))
        .issuer_name(ca_certificate.subject)
        .public_key(responder_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(responder_public_key), critical=False)
        .add_extension(aki, critical=False)
    )
    return ca.sign_certificate(builder)


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def renewal_due(certificate: x509.Certificate, now: dt.datetime) -> bool:
    """True once 2/3 of the responder certificate's life has passed (or it is not yet valid)."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    return now < start or now >= start + (end - start) * RENEW_AT_FRACTION


@dataclasses.dataclass(frozen=True)
class ResponderFiles:
    """``home/ocsp/<ca>.pem`` and ``home/ocsp/<ca>.key.pem`` (0600) of one CA's responder."""

    directory: Path
    ca_name: str

    @property
    def certificate_path(self) -> Path:
        return self.directory / f"{self.ca_name}.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / f"{self.ca_name}.key.pem"

    def load(self, ca_certificate: x509.Certificate) -> ResponderKey | None:
        """The stored responder, or None when absent or not certified by this CA.

        Raises:
            BadInput: a stored file cannot be read.
        """
        if not (self.certificate_path.exists() and self.key_path.exists()):
            return None
        try:
            certificate = x509.load_pem_x509_certificate(self.certificate_path.read_bytes())
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"{self.directory}: cannot read the OCSP responder of {self.ca_name} ({exc})",
                           hint=f"delete {self.certificate_path.name} and {self.key_path.name}; "
                                "`mtlskit serve` makes a new one") from None
        if not public_keys_match(key, certificate.public_key()) or \
                certificate.issuer != ca_certificate.subject:
            return None
        return ResponderKey(certificate, key)

    def save(self, responder: ResponderKey) -> None:
        """Write key (0600) then certificate, each atomically (temp file + os.replace)."""
        make_private_dir(self.directory)
        write_atomic(self.key_path, private_key_pem(responder.private_key), PRIVATE)
        write_atomic(self.certificate_path, responder.certificate.public_bytes(serialization.Encoding.PEM), PUBLIC)


def ensure_responder(files: ResponderFiles, ca, clock: Clock,
                     lifetime: dt.timedelta = RESPONDER_LIFETIME) -> tuple[ResponderKey, bool]:
    """The current responder of the CA ``ca`` (its Signer), certifying a new EC P-256 key
    when none is stored or the stored one is due for renewal. Returns (responder, created)."""
    now = clock.now()
    current = files.load(ca.certificate)
    if current is not None and not renewal_due(current.certificate, now):
        return current, False
    key = generate_private_key(KeyType.EC_P256)
    certificate = build_responder_certificate(ca, key.public_key(), now, lifetime)
    responder = ResponderKey(certificate, key)
    files.save(responder)
    return responder, True


class ResponderKeeper:
    """Keeps the responder of every CA current, for `mtlskit serve`.

    Creating or renewing needs the CA key (the Signer); every new responder certificate
    is recorded in the inventory with profile "ocsp". Processes serving the same home
    take a lock (a database lock on PostgreSQL, whatever host they run on; a file lock on
    SQLite), so only one of them renews and the others load its result.
    """

    def __init__(self, directory: Path, signers: Mapping[str, object], inventory, clock: Clock,
                 lifetime: dt.timedelta = RESPONDER_LIFETIME) -> None:
        self.directory = directory
        self._signers = dict(signers)
        self._inventory = inventory
        self._clock = clock
        self._lifetime = lifetime

    def add_signers(self, signers: Mapping[str, object]) -> None:
        """Keep the responders of these CAs too (new intermediates, after a rotation)."""
        self._signers.update(signers)

    def current(self) -> dict[str, ResponderKey]:
        """The responder of each CA by name, renewed where due."""
        make_private_dir(self.directory)
        found = {}
        with cluster_lock(self._inventory.db, RESPONDERS, self.directory / ".lock"):
            for name, signer in self._signers.items():
                files = ResponderFiles(self.directory, name)
                found[name], created = ensure_responder(files, signer, self._clock, self._lifetime)
                if created:
                    self._record(name, found[name].certificate)
        return found

    def _record(self, ca_name: str, certificate: x509.Certificate) -> None:
        from mtlskit.issue.issuer import record_of

        record = record_of(certificate, ca_name, _common_name(certificate), "ocsp", sans=[])
        self._inventory.add_certificates([record], self._clock.now())
