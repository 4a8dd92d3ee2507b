"""Signing a CSR: the request supplies a key and names, the profile decides the rest."""

from __future__ import annotations

import warnings

from cryptography import x509

from mtlskit.ca.authority import Authority
from mtlskit.errors import BadInput, UsageError
from mtlskit.issue import policy
from mtlskit.issue.issuer import LeafTemplate, apply_profile_defaults, record_of
from mtlskit.issue.profiles import Profile
from mtlskit.issue.subject import SubjectOptions, requested_fields
from mtlskit.pki import names
from mtlskit.pki.encoding import load_csr
from mtlskit.store.inventory import CertificateRecord


def sign_csr(service, authority: Authority, csr_data: bytes, profile: Profile,
             days: int | None, name: str | None = None, *, hours: int | None = None,
             subject: SubjectOptions = SubjectOptions(), defaults: SubjectOptions = SubjectOptions(),
             dropped: list[str] | None = None) -> tuple[x509.Certificate, CertificateRecord]:
    """Verify the CSR, apply the profile, sign, record.

    The CSR gives its SANs, its subject CN (else its first DNS name) as the NAME when
    ``name`` is not given, and its C, ST, L, O and OU; key usage, EKU and
    basicConstraints requested in the CSR are ignored. The certificate's subject is
    ``C, ST, L, O, OU, CN=NAME``: each field from ``subject`` (the options), else the
    CSR, else ``defaults`` ([subject] in mtlskit.toml). Any other subject attribute of the
    CSR (emailAddress, serialNumber, ...) and a repeated field is left out, and described
    in ``dropped`` when a list is given (the CLI prints one warning line).

    Raises:
        BadInput: not a CSR, its signature does not verify, ``name`` is not a NAME, more
            than ``policy.MAX_SANS`` SANs, or a SAN outside the grammar of ``--dns``,
            ``--ip``, ``--email``, ``--uri`` (a malformed wildcard included), or a C, ST,
            L, O or OU outside the rules of the options.
        UsageError: no ``name`` and the CSR's CN is not a valid NAME (or it has none).
        PolicyViolation: weak key, names (the SANs, or the CN when it reads as a DNS
            name) outside the constraints, a wildcard the profile refuses, lifetime too long.
    """
    csr = load_csr(csr_data)
    if not csr.is_signature_valid:
        raise BadInput("the CSR's signature does not verify (corrupted, or not signed by its key)")
    template = LeafTemplate(authority, profile, service.settings.public_url, service.clock.now(), days, hours)
    subject_of_csr = _subject_of(csr)
    from_csr, left_out = requested_fields(subject_of_csr)
    fields = subject.over(from_csr.over(defaults))
    requested = _requested_sans(csr)
    policy.check_san_count(requested)   # before any work per name
    sans = [names.requested_san(n) for n in requested]
    name = names.check_name(name, "--name") if name is not None else _name_from(subject_of_csr, sans)
    sans = apply_profile_defaults(profile, name, sans)
    certificate = template.sign(names.subject_name(name, fields.attributes()), sans, csr.public_key())
    if dropped is not None:
        dropped.extend(left_out)
    record = record_of(certificate, template.signer.name, name, profile.name)
    service.inventory.add_certificates([record], service.clock.now(), action="sign")
    return certificate, record


def _requested_sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        return names.sans_of(csr)
    except (ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise BadInput(f"the CSR's extensions cannot be decoded ({type(exc).__name__})",
                       hint="request one subjectAltName extension of DNS, IP, email and URI names") from None


def _subject_of(csr: x509.CertificateSigningRequest) -> x509.Name:
    """The CSR's subject, without the warning cryptography prints for a value outside its
    length bounds (C=Germany): requested_fields refuses it in one line instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return csr.subject


def _name_from(subject: x509.Name, sans: list[x509.GeneralName]) -> str:
    """The CSR's CN (else first DNS name) as NAME, only if it is a valid NAME: a CSR is
    written by someone else, and its NAME ends up in configurations and directories."""
    proposed = names.common_name_of(subject) or _first_dns(sans)
    if not proposed:
        raise UsageError("the CSR has neither a subject CN nor a DNS name to identify it: give --name NAME")
    if not names.is_valid_name(proposed):
        raise UsageError(f"the CSR's CN {names.shown(proposed)} is not a valid NAME ({names.NAME_RULE}): "
                         f"give --name NAME")
    return proposed


def _first_dns(sans: list[x509.GeneralName]) -> str | None:
    return next((n.value for n in sans if isinstance(n, x509.DNSName)), None)
