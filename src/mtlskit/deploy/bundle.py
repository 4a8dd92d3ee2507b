"""What a server must trust and check, computed from the CA hierarchy (pure).

A client certificate is verified against ``client-ca.pem`` (every CA certificate of
the hierarchy: the root as trust anchor, the intermediates so the server can build the
path when a client sends only its leaf). With a CRL file, Nginx, Apache and HAProxy
all check revocation at *every* level of the chain (OpenSSL ``X509_V_FLAG_CRL_CHECK_ALL``),
so the bundle must hold a current CRL for every CA, the root included: a missing root
CRL makes the server refuse every client ("unable to get certificate CRL").
"""

from __future__ import annotations

from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.deploy.install import KEY_MODE, FileSpec
from mtlskit.deploy.options import DeployOptions
from mtlskit.deploy.render import Layout, render
from mtlskit.errors import BadInput


def pem_bundle(items: Sequence[x509.Certificate | x509.CertificateRevocationList]) -> bytes:
    """Concatenate certificates or CRLs as PEM, in the given order."""
    return b"".join(item.public_bytes(Encoding.PEM) for item in items)


def verify_depth(ca_certificates: Sequence[x509.Certificate]) -> int:
    """The verify depth the server needs: the number of CA certificates above a client leaf.

    OpenSSL counts the leaf as depth 0, so a leaf -> intermediate -> root path needs a
    depth of 2; Nginx's default ``ssl_verify_depth 1`` refuses such clients.
    """
    if not ca_certificates:
        raise BadInput("no CA certificate to trust for client verification")
    return len(ca_certificates)


def check_crl_coverage(ca_certificates: Sequence[x509.Certificate],
                       crls: Sequence[x509.CertificateRevocationList]) -> None:
    """Refuse a CRL bundle that lacks a CRL for one of the CAs (RFC 5280 section 6.3).

    Raises:
        BadInput: a CA has no CRL signed by it in the bundle.
    """
    for ca in ca_certificates:
        if not any(crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key()) for crl in crls):
            raise BadInput(
                f"the CRL bundle has no CRL from {ca.subject.rfc4514_string()}; the server would "
                "refuse every client",
                "run `mtlskit crl` to publish a CRL for every CA")


def haproxy_serial(serial: int) -> str:
    """A serial as HAProxy's ``ssl_c_serial,hex`` prints it: the magnitude bytes, upper case."""
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def revoked_serials(crls: Sequence[x509.CertificateRevocationList]) -> list[str]:
    """Every serial the CRLs revoke, in HAProxy's spelling, sorted (serials are random,
    at least 64 bits, so one list for all CAs does not mix up two certificates)."""
    return sorted({haproxy_serial(entry.serial_number) for crl in crls for entry in crl})


def serial_list_file(serials: Sequence[str]) -> bytes:
    return "".join(f"{s}\n" for s in serials).encode()


def load_crls(pem: bytes) -> list[x509.CertificateRevocationList]:
    """Parse a PEM bundle of CRLs.

    Raises:
        BadInput: the data holds no CRL or a malformed one.
    """
    marker = b"-----BEGIN X509 CRL-----"
    chunks = [marker + part for part in pem.split(marker)[1:]]
    if not chunks:
        raise BadInput("the CRL bundle holds no PEM CRL")
    try:
        return [x509.load_pem_x509_crl(chunk) for chunk in chunks]
    except ValueError as exc:
        raise BadInput(f"the CRL bundle is not valid PEM: {exc}") from None


def deployment_files(options: DeployOptions, server_chain_pem: bytes, server_key_pem: bytes,
                     ca_certificates: Sequence[x509.Certificate],
                     crls: Sequence[x509.CertificateRevocationList]) -> list[FileSpec]:
    """Every file of a deployment, in installation order (pure).

    Keys and certificates come first and the configuration last, so a server reloaded
    in the middle never reads a configuration whose files are missing.

    Args:
        options: validated ``DeployOptions``.
        server_chain_pem: the server leaf followed by its intermediates.
        server_key_pem: the server's private key (installed 0600).
        ca_certificates: the CAs client certificates chain to (root last or first).
        crls: the current CRL of every CA (required when ``options.revocation == "crl"``).

    Returns:
        the files, for ``install.install``.

    Raises:
        BadInput: a CA without a CRL while revocation is ``crl``.
    """
    layout = Layout(options.directory, options.server)
    files = [FileSpec(layout.server_key.name, server_key_pem, KEY_MODE),
             FileSpec(layout.server_cert.name, server_chain_pem),
             FileSpec(layout.client_ca.name, pem_bundle(ca_certificates))]
    if options.revocation == "crl":
        check_crl_coverage(ca_certificates, crls)
        files.append(FileSpec(layout.crl.name, pem_bundle(crls)))
        if options.server == "haproxy":
            files.append(FileSpec(layout.revoked_serials.name, serial_list_file(revoked_serials(crls))))
    depth = verify_depth(ca_certificates)
    files += [FileSpec(name, text.encode()) for name, text in render(options, depth).items()]
    return files
