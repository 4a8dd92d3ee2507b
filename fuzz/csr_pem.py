"""Fuzz target: CSR and PEM loading (``sign``'s reading of a CSR, ``inspect``'s detection).

Inputs are mutations of real files: CSRs, certificates, CRLs, keys (clear and encrypted)
and a PKCS#12 bundle, in DER and in PEM (the DER inside the armour mutated, and the
armour itself). Whatever the input, ``mtlskit.pki.encoding.detect`` and the CSR reading
of ``mtlskit.issue.csr`` (load, signature check, SANs, the NAME taken from the CSR) end
in a result or one of the project's domain errors (BadInput, UsageError & co.), never
another exception (the CLI would show that as a traceback) and never a warning.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st

from fuzz import engine, pki
from fuzz.mutate import mutated
from mtlskit.errors import MtlskitError
from mtlskit.issue import csr as csr_module
from mtlskit.pki import der, names
from mtlskit.pki.encoding import detect, load_csr

PASSWORD = b"fuzz-password"


def _csr(common_name: str | None, sans: tuple[str, ...], key) -> x509.CertificateSigningRequest:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), False)
    return builder.sign(key, hashes.SHA256())


@functools.cache
def seeds() -> list[bytes]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(65537, 1024)  # small: only parsed, never trusted
    issuer, issuer_key = pki.ca()
    leaf = pki.leaves()[0]
    requests = [_csr("app.example", ("app.example", "b.example"), ec_key), _csr(None, ("only-san.example",), ec_key),
                _csr("not a NAME/..", (), rsa_key), _csr(None, (), ec_key)]
    crl = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(pki.NOW)
           .next_update(pki.NOW + dt.timedelta(days=1))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(7).revocation_date(pki.NOW).build())
           .sign(issuer_key, hashes.SHA256()))
    ders = [r.public_bytes(serialization.Encoding.DER) for r in requests]
    ders += [leaf.public_bytes(serialization.Encoding.DER), crl.public_bytes(serialization.Encoding.DER),
             ec_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
             ec_key.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)]
    labels = ["CERTIFICATE REQUEST"] * len(requests) + ["CERTIFICATE", "X509 CRL", "PRIVATE KEY", "PUBLIC KEY"]
    bundle = pkcs12.serialize_key_and_certificates(b"fuzz", issuer_key, issuer, [leaf],
                                                   serialization.BestAvailableEncryption(PASSWORD))
    encrypted = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(PASSWORD))
    return [*ders, bundle, encrypted, *[der.pem(label, body) for label, body in zip(labels, ders)],
            der.pem("CERTIFICATE", ders[4]) + der.pem("CERTIFICATE", issuer.public_bytes(serialization.Encoding.DER))]


@st.composite
def _rearmoured(draw) -> bytes:
    """A PEM whose DER inside the armour is mutated, under a label of any kind."""
    body = draw(mutated(seeds()[:8]))
    label = draw(st.sampled_from(["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST", "CERTIFICATE", "X509 CRL",
                                  "PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "PUBLIC KEY", "PKCS7"]))
    return der.pem(label, body)


CASES = st.tuples(st.one_of(mutated(seeds()), _rearmoured(), st.binary(max_size=200)),
                  st.sampled_from([None, PASSWORD, b"wrong"]))


def read_csr(data: bytes) -> None:
    """What ``sign_csr`` reads of a CSR before it signs anything."""
    request = load_csr(data)
    if not request.is_signature_valid:
        return
    request.public_key()
    sans = names.sans_of(request)
    subject = csr_module._subject_of(request)
    csr_module.requested_fields(subject)   # the C, ST, L, O, OU it keeps
    csr_module._name_from(subject, sans)


def check(case) -> None:
    data, password = case
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        for read in (read_csr, lambda d: detect(d, password)):
            try:
                read(data)
            except MtlskitError:
                pass
    assert not shown, f"warnings reach the user: {[str(w.message) for w in shown]}"


if __name__ == "__main__":
    engine.main("csr_pem", CASES, check)
