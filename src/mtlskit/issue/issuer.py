"""The issuer: a request goes through named stages and comes out signed.

    names -> check lifetime -> check key -> check SANs -> check name constraints
          -> build -> sign -> record

Signing returns a value; the caller stores it. Nothing here touches files or the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.parse
import datetime as dt
from typing import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.ca.authority import BACKDATE, Authority, random_serial
from mtlskit.ca.signer import Signer
from mtlskit.issue import policy
from mtlskit.issue.lifetime import check_profile_maximum, requested_lifetime
from mtlskit.issue.profiles import Profile
from mtlskit.issue.subject import SubjectOptions
from mtlskit.pki import der, extensions, leafder, names
from mtlskit.pki.keys import check_key_strength, key_type_of
from mtlskit.pki.reference import reference_encoders
from mtlskit.store.inventory import CertificateRecord


@dataclasses.dataclass(frozen=True)
class SanRequest:
    """What the user typed: --dns, --ip, --email, --uri."""

    dns: tuple[str, ...] = ()
    ip: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.dns or self.ip or self.email or self.uri)


@dataclasses.dataclass(frozen=True)
class IssueRequest:
    profile: Profile
    name: str                      # becomes the subject CN and the inventory NAME
    sans: SanRequest = SanRequest()
    subject: SubjectOptions = SubjectOptions()   # C, ST, L, O, OU before the CN
    days: int | None = None
    hours: int | None = None       # instead of days, for short-lived certificates


CLIENT_URI_BASE = "https://mtlskit.invalid/client/"


def client_identity_uri(name: str) -> str:
    """The URI SAN a client gets when no email or URI is given, so SAN-only verifiers see it.

    An https URL under the reserved `.invalid` domain (RFC 6761): it can never resolve,
    and unlike a URN it passes the URI syntax checks of linters (pkilint).
    """
    return CLIENT_URI_BASE + urllib.parse.quote(name, safe="")


def resolve_sans(request: IssueRequest) -> list[x509.GeneralName]:
    """Stage 1: the subjectAltNames, with the defaults of the profile applied."""
    sans: list[x509.GeneralName] = []
    if not request.sans.empty:  # batches have none: skip the four passes
        sans = [names.dns_name(d) for d in request.sans.dns]
        sans += [names.ip_address(i) for i in request.sans.ip]
        sans += [names.email_address(e) for e in request.sans.email]
        sans += [names.uri(u) for u in request.sans.uri]
    return apply_profile_defaults(request.profile, request.name, sans)


def apply_profile_defaults(profile: Profile, name: str,
                           sans: list[x509.GeneralName]) -> list[x509.GeneralName]:
    """A server NAME that looks like a host becomes a DNS SAN; a client without an email or
    URI SAN gets a URI naming it, so CN-based and SAN-based verifiers both see the identity."""
    sans = list(sans)
    if profile.is_server and names.looks_like_hostname(name):
        host = names.dns_name(name)
        if host not in sans:
            sans.insert(0, host)
    if profile.is_client and not any(isinstance(n, (x509.RFC822Name, x509.UniformResourceIdentifier))
                                     for n in sans):
        sans.append(names.uri(client_identity_uri(name)))
    return sans


class LeafTemplate:
    """Everything about a leaf that is the same for every certificate of one profile
    and issuer, computed once (batch issuance builds thousands from one template).

    Certificates are assembled from DER parts (:mod:`mtlskit.pki.leafder`) that are
    byte for byte what cryptography's builder writes, signed by the Signer's
    ``sign_bytes``; a signing key with no DER signature algorithm, and every key when
    ``MTLSKIT_REFERENCE_ENCODERS=1``, goes through the builder (:meth:`build`) instead.
    """

    def __init__(self, authority: Authority, profile: Profile, public_url: str | None,
                 now: dt.datetime, days: int | None, hours: int | None = None,
                 lifetime: dt.timedelta | None = None) -> None:
        """``lifetime``: notAfter - notBefore exactly (renewal keeps its predecessor's),
        instead of ``days`` or ``hours`` from now."""
        self.signer: Signer = authority.issuing
        self.profile = profile
        self.not_before = now - BACKDATE
        if lifetime is None:
            self.lifetime = requested_lifetime(profile, days, hours)
            self.not_after = now + self.lifetime
        else:
            check_profile_maximum(profile, lifetime - BACKDATE)
            self.lifetime = lifetime
            self.not_after = self.not_before + lifetime
        policy.check_within_issuer(self.signer.certificate, self.not_after,
                                   "--hours" if hours is not None else "--days")
        self.name_constraints = policy.name_constraints_of(
            [authority.root.certificate, self.signer.certificate])
        common = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage(list(profile.extended_key_usages)), False),
            (extensions.authority_key_identifier(self.signer.certificate), False),
            *extensions.publication_extensions(public_url, self.signer.name),
        ]
        if profile.ocsp_nocheck:
            common.append((x509.OCSPNoCheck(), False))
        base = (x509.CertificateBuilder().issuer_name(self.signer.certificate.subject)
                .not_valid_before(self.not_before).not_valid_after(self.not_after))
        for extension, critical in common:
            base = base.add_extension(extension, critical)
        self._base = base  # builders are immutable: each certificate starts from this one
        self._layout, self._sign_tbs = self._fast_path(common)
        self._key_usages: dict[type, bytes] = {}

    def _fast_path(self, common) -> tuple[leafder.LeafLayout | None, Callable[[bytes], bytes] | None]:
        """The DER layout and the Signer's ``sign_bytes``; (None, None) when the issuing
        key has no DER signature algorithm or the reference encoders are switched on."""
        algorithm = self.signer.signature_algorithm
        if algorithm is None or reference_encoders():
            return None, None
        leading = [_extension_der(extension, critical) for extension, critical in common]
        layout = leafder.LeafLayout(algorithm, self.signer.certificate.subject.public_bytes(),
                                    self.not_before, self.not_after, leading)
        return layout, self.signer.sign_bytes

    @property
    def validity(self) -> tuple[dt.datetime, dt.datetime]:
        """(notBefore, notAfter) as they appear in the certificates: whole seconds."""
        return self.not_before.replace(microsecond=0), self.not_after.replace(microsecond=0)

    def check_names(self, sans: list[x509.GeneralName], common_name: str | None = None) -> None:
        """SAN count, required SANs, wildcards, and name constraints on the SANs and on the
        subject CN (when it reads as a DNS name)."""
        policy.check_san_count(sans)
        policy.check_required_sans(self.profile, sans)
        policy.check_wildcards(self.profile, sans)
        policy.check_names_within(self.name_constraints, sans, common_name)

    def sign(self, subject: x509.Name, sans: list[x509.GeneralName], public_key) -> x509.Certificate:
        """Stages: check key, SANs and name constraints, build, sign."""
        return x509.load_der_x509_certificate(self.sign_der(subject, sans, public_key, random_serial()))

    def sign_der(self, subject: x509.Name, sans: list[x509.GeneralName], public_key, serial: int) -> bytes:
        """Like :meth:`sign` with the serial given, returning the DER certificate."""
        check_key_strength(public_key)
        self.check_names(sans, names.common_name_of(subject) if self.name_constraints else None)
        if self._layout is None:
            return self.build(subject, sans, public_key, serial).public_bytes(serialization.Encoding.DER)
        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        trailing = [self._key_usage(public_key), leafder.subject_key_identifier(spki)]
        if sans:
            trailing.append(leafder.subject_alt_name(x509.SubjectAlternativeName(sans).public_bytes()))
        tbs = self._layout.tbs_certificate(serial, subject.public_bytes(), spki, trailing)
        return self._layout.certificate(tbs, self._sign_tbs(tbs))

    def build(self, subject: x509.Name, sans: list[x509.GeneralName], public_key, serial: int) -> x509.Certificate:
        """The same certificate through cryptography's builder (no checks): the fallback
        for signing keys the DER path does not know, and its reference in the tests."""
        builder = (self._base.subject_name(subject).public_key(public_key).serial_number(serial)
                   .add_extension(extensions.leaf_key_usage(public_key, self.profile.key_encipherment_for_rsa), True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
        return self.signer.sign_certificate(builder)

    def _key_usage(self, public_key) -> bytes:
        """The keyUsage extension, which depends only on the kind of key (one per type)."""
        encoded = self._key_usages.get(type(public_key))
        if encoded is None:
            usage = extensions.leaf_key_usage(public_key, self.profile.key_encipherment_for_rsa)
            encoded = self._key_usages[type(public_key)] = _extension_der(usage, True)
        return encoded

    def issue(self, request: IssueRequest, public_key) -> x509.Certificate:
        subject = names.subject_name(request.name, request.subject.attributes())
        return self.sign(subject, resolve_sans(request), public_key)


def _extension_der(value: x509.ExtensionType, critical: bool) -> bytes:
    return der.extension(value.oid.dotted_string, value.public_bytes(), critical)


def record_of(certificate: x509.Certificate, issuer: str, name: str, profile: str,
              sans: Sequence[x509.GeneralName] | None = None) -> CertificateRecord:
    """The inventory's view of a freshly signed certificate (``sans``: the names already
    known, which saves parsing them out of the certificate).

    Batch issuance does not come here: its workers return only the parts they computed.
    """
    der_bytes = certificate.public_bytes(serialization.Encoding.DER)
    return CertificateRecord(
        issuer=issuer, serial=certificate.serial_number, name=name,
        subject=certificate.subject.rfc4514_string(),
        sans=tuple(names.general_name_text(n) for n in (names.sans_of(certificate) if sans is None else sans)),
        profile=profile, key_type=key_type_of(certificate.public_key()),
        not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc,
        fingerprint_sha256=hashlib.sha256(der_bytes).hexdigest(),
        pem=certificate_pem(der_bytes).decode("ascii"),
    )


def certificate_pem(der_bytes: bytes) -> bytes:
    """RFC 7468 PEM of a DER certificate, as cryptography writes it."""
    return der.pem("CERTIFICATE", der_bytes)


def validate_name(name: str) -> str:
    """A NAME is also a directory name and a configuration value: see ``names.check_name``."""
    return names.check_name(name)
