"""Root and intermediate creation (pure) and the loaded Authority."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from typing import Callable

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.ca.signer import Signer
from mtlskit.pki import extensions
from mtlskit.pki.keys import KeyType, generate_private_key, key_type_of, signature_hash

BACKDATE = dt.timedelta(minutes=5)  # tolerate clients whose clock runs a little behind


#: makes a CA's new private key from (key type, CA name): a file key unless the CA keeps
#: its keys in a PKCS#11 token (:mod:`mtlskit.ca.pkcs11`)
KeyMaker = Callable[[KeyType, str], object]


def file_key(key_type: KeyType, name: str):
    return generate_private_key(key_type)


def random_serial() -> int:
    """A positive serial of 159 random bits: > 64 bits of entropy, at most 20 octets (RFC 5280 4.1.2.2)."""
    return secrets.randbits(159) | (1 << 158)


@dataclasses.dataclass(frozen=True)
class CaRequest:
    name: str
    key_type: KeyType = KeyType.EC_P256
    intermediate: bool = True
    root_days: int = 3650
    intermediate_days: int = 1825
    permit_dns: tuple[str, ...] = ()
    permit_ip: tuple[str, ...] = ()
    permit_email: tuple[str, ...] = ()
    public_url: str | None = None
    # C, ST, L, O, OU before the CN of both CA subjects (checked: issue.subject.SubjectOptions).
    subject_fields: tuple[x509.NameAttribute, ...] = ()


@dataclasses.dataclass(frozen=True)
class Authority:
    """The CA hierarchy with its signing keys: the root, the CA that issues leaves, and
    the intermediates it replaced (``retired``, oldest first) that still publish the
    revocation of what they issued. The root's key may be deferred (offline root)."""

    root: Signer
    issuing: Signer
    retired: tuple[Signer, ...] = ()
    #: makes the Signer of a CA added since loading (``CaFiles.refreshed``); None when built in memory
    load_signer: Callable[[str], Signer] | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def signers(self) -> dict[str, Signer]:
        """Every CA by name: root first, then the intermediates, oldest first."""
        ordered = [self.root, *self.retired, self.issuing]
        return {signer.name: signer for signer in ordered}

    @property
    def chain(self) -> list[x509.Certificate]:
        """The CA certificates below the root that a leaf's chain.pem must carry."""
        return [] if self.issuing is self.root else [self.issuing.certificate]


def _ca_subject(common_name: str, fields: tuple[x509.NameAttribute, ...] = ()) -> x509.Name:
    return x509.Name([*fields, x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def _ca_builder(subject: x509.Name, issuer: x509.Name, public_key, now: dt.datetime,
                days: int, path_length: int | None) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(extensions.ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def create_root(request: CaRequest, now: dt.datetime, name: str = "root", new_key: KeyMaker = file_key) -> Signer:
    """A self-signed root. With an intermediate it may sign only CAs with no further depth."""
    key = new_key(request.key_type, name)
    label = f"{request.name} Root" if request.intermediate else request.name
    subject = _ca_subject(label, request.subject_fields)
    path_length = 1 if request.intermediate else 0
    builder = _ca_builder(subject, subject, key.public_key(), now, request.root_days, path_length)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    if not request.intermediate:
        builder = _with_constraints(builder, request)
    certificate = builder.sign(key, signature_hash(key))
    return Signer(name, certificate, key)


def create_intermediate(request: CaRequest, root: Signer, now: dt.datetime,
                        name: str = "intermediate", label: str = "Intermediate",
                        new_key: KeyMaker = file_key) -> Signer:
    """The issuing CA, signed by the root; it carries the name constraints.

    ``label`` ends its common name: a rotated intermediate gets another one ("Intermediate 2"),
    so that old and new have distinct subjects (each CRL and OCSP answer names its issuer)."""
    key = new_key(request.key_type, name)
    days = min(request.intermediate_days, _days_left(root.certificate, now))
    builder = _ca_builder(_ca_subject(f"{request.name} {label}", request.subject_fields), root.certificate.subject,
                          key.public_key(), now, days, path_length=0)
    builder = builder.add_extension(extensions.authority_key_identifier(root.certificate), critical=False)
    for extension, critical in extensions.publication_extensions(request.public_url, root.name):
        builder = builder.add_extension(extension, critical)
    builder = _with_constraints(builder, request)
    return Signer(name, root.sign_certificate(builder), key)


def _with_constraints(builder: x509.CertificateBuilder, request: CaRequest) -> x509.CertificateBuilder:
    constraints = extensions.name_constraints(list(request.permit_dns), list(request.permit_ip),
                                              list(request.permit_email))
    if constraints is None:
        return builder
    # RFC 5280 4.2.1.10: conforming CAs MUST mark this extension as critical.
    return builder.add_extension(constraints, critical=True)


def _days_left(certificate: x509.Certificate, now: dt.datetime) -> int:
    return max(1, (certificate.not_valid_after_utc - now).days)


def create_authority(request: CaRequest, now: dt.datetime, new_key: KeyMaker = file_key) -> Authority:
    root = create_root(request, now, new_key=new_key)
    issuing = create_intermediate(request, root, now, new_key=new_key) if request.intermediate else root
    return Authority(root=root, issuing=issuing)


def create_successor(previous: x509.Certificate, root: Signer, now: dt.datetime, name: str,
                     label: str, public_url: str | None) -> Signer:
    """A new intermediate to take over from ``previous``: a fresh key of the same type,
    the same lifetime length (capped by the root's) and name constraints, its own name.

    ``label`` ends the new subject's common name, after the root's ("<CA> Intermediate 2"),
    so that its CRLs and OCSP answers name a different issuer than the old intermediate's.
    The key is made where the root keeps its own (a file, or the root's PKCS#11 token).
    """
    key = root.new_ca_key(KeyType.parse(key_type_of(previous.public_key())), name)
    lifetime = previous.not_valid_after_utc - previous.not_valid_before_utc - BACKDATE
    days = min(max(1, lifetime.days), _days_left(root.certificate, now))
    root_label = root.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    base = str(root_label[0].value).removesuffix(" Root") if root_label else "mtlskit CA"
    fields = tuple(attribute for attribute in previous.subject  # C, ST, L, O, OU of the old one
                   if attribute.oid != NameOID.COMMON_NAME)
    builder = _ca_builder(_ca_subject(f"{base} {label}", fields), root.certificate.subject,
                          key.public_key(), now, days, path_length=0)
    builder = builder.add_extension(extensions.authority_key_identifier(root.certificate), critical=False)
    for extension, critical in extensions.publication_extensions(public_url, root.name):
        builder = builder.add_extension(extension, critical)
    try:
        constraints = previous.extensions.get_extension_for_class(x509.NameConstraints)
        builder = builder.add_extension(constraints.value, critical=True)
    except x509.ExtensionNotFound:
        pass
    return Signer(name, root.sign_certificate(builder), key)
