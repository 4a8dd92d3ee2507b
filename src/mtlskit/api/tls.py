"""The TLS side of `mtlskit serve --tls-port`: its server certificate, its SSL context and
the caller's identity.

The server certificate is issued by the issuing CA to serve itself (the host's name,
``localhost``, ``127.0.0.1`` and the ``--tls-name``/``--tls-ip`` names), kept under
``HOME/tls/`` (key 0600), reused while valid and renewed by serve once 2/3 of its life has
passed or when the names it must carry change, exactly as the OCSP responder certificate
(:mod:`mtlskit.publish.responder`). It is recorded in the inventory with profile
``serve-tls``: a certificate serve manages itself, which ``list --expiring`` may leave out.

The listener asks every client for a certificate (optional at the TLS layer) and verifies
it against the CA. The app learns who is calling only from the verified certificate, put
in the ASGI scope as ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM strings,
the client's certificate first, as the ASGI TLS extension has it; empty when none was presented): nothing a client sends
in a header can stand in for it. TLS 1.2 and later; no session tickets (a resumed session
would skip the certificate check after a revocation, as deploy's configurations do).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.clock import Clock
from mtlskit.errors import BadInput
from mtlskit.fileio import PRIVATE, PUBLIC, make_private_dir, write_atomic
from mtlskit.pki import extensions, names
from mtlskit.pki.keys import KeyType, generate_private_key, private_key_pem, public_keys_match
from mtlskit.store.locks import SERVE_TLS, cluster_lock

PROFILE = "serve-tls"  # the inventory's mark of the certificate serve manages itself
LIFETIME = dt.timedelta(days=30)
RENEW_AT_FRACTION = 2 / 3
BACKDATE = dt.timedelta(minutes=5)
COMMON_NAME = "mtlskit serve"


@dataclasses.dataclass(frozen=True)
class TlsNames:
    """The names the TLS server certificate carries."""

    dns: tuple[str, ...]
    ips: tuple[str, ...]

    @classmethod
    def for_host(cls, extra_dns: Sequence[str] = (), extra_ips: Sequence[str] = ()) -> "TlsNames":
        """The host's name, localhost, 127.0.0.1 and the given ones (validated).

        Raises:
            BadInput: a --tls-name that is not a DNS name or a --tls-ip that is not an address.
        """
        dns = ["localhost"]
        host = socket.gethostname().lower()
        if names.looks_like_hostname(host):
            dns.append(host)
        for value in extra_dns:
            dns.append(names.dns_name(value).value)
        ips = ["127.0.0.1"] + [str(names.ip_address(value).value) for value in extra_ips]
        return cls(tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(ips)))

    def general_names(self) -> list[x509.GeneralName]:
        return ([x509.DNSName(d) for d in self.dns]
                + [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ips])


def build_server_certificate(signer, public_key, tls_names: TlsNames, now: dt.datetime,
                             lifetime: dt.timedelta = LIFETIME) -> x509.Certificate:
    """Certify ``public_key`` as serve's TLS server. Pure (signs with the Signer)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)]))
        .issuer_name(signer.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + lifetime, signer.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(extensions.leaf_key_usage(public_key, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(tls_names.general_names()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(extensions.authority_key_identifier(signer.certificate), critical=False)
    )
    return signer.sign_certificate(builder)


def renewal_due(certificate: x509.Certificate, tls_names: TlsNames, now: dt.datetime) -> bool:
    """Past 2/3 of its life, not yet valid, or not carrying exactly the names wanted."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now < start or now >= start + (end - start) * RENEW_AT_FRACTION:
        return True
    return set(names.sans_of(certificate)) != set(tls_names.general_names())


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """``HOME/tls/server.pem`` (certificate + chain) and ``HOME/tls/server.key.pem`` (0600)."""

    directory: Path

    @property
    def certificate_path(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "server.key.pem"

    def load(self, issuer: x509.Certificate) -> x509.Certificate | None:
        """The stored certificate, or None when absent, not matching its key, or not the issuer's."""
        if not (self.certificate_path.exists() and self.key_path.exists()):
            return None
        try:
            certificate = x509.load_pem_x509_certificates(self.certificate_path.read_bytes())[0]
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        except (ValueError, TypeError, IndexError) as exc:
            raise BadInput(f"{self.directory}: cannot read serve's TLS certificate ({type(exc).__name__})",
                           hint=f"delete {self.directory}; `mtlskit serve --tls-port` makes a new one") from None
        if not public_keys_match(key, certificate.public_key()) or certificate.issuer != issuer.subject:
            return None
        return certificate

    def save(self, key, certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
        make_private_dir(self.directory)
        pem = serialization.Encoding.PEM
        write_atomic(self.key_path, private_key_pem(key), PRIVATE)
        write_atomic(self.certificate_path,
                     b"".join(c.public_bytes(pem) for c in [certificate, *chain]), PUBLIC)


class TlsKeeper:
    """Keeps serve's TLS server certificate current (renewal needs the CA's Signer); every
    new one is recorded in the inventory with profile ``serve-tls``. A lock (a database lock
    on PostgreSQL, a file lock on SQLite) lets one of several serving processes renew and
    the others load its result."""

    def __init__(self, directory: Path, authority, inventory, clock: Clock, tls_names: TlsNames) -> None:
        self.files = TlsFiles(directory)
        self._authority = authority
        self._inventory = inventory
        self._clock = clock
        self._names = tls_names

    def current(self) -> tuple[x509.Certificate, bool]:
        """(the current certificate, whether it was just made)."""
        make_private_dir(self.files.directory)
        signer = self._authority.issuing
        with cluster_lock(self._inventory.db, SERVE_TLS, self.files.directory / ".lock"):
            now = self._clock.now()
            stored = self.files.load(signer.certificate)
            if stored is not None and not renewal_due(stored, self._names, now):
                return stored, False
            key = generate_private_key(KeyType.EC_P256)
            certificate = build_server_certificate(signer, key.public_key(), self._names, now)
            self._record(certificate, signer.name)  # in the inventory before its files exist
            self.files.save(key, certificate, self._authority.chain)
            return certificate, True

    def _record(self, certificate: x509.Certificate, issuer: str) -> None:
        from mtlskit.issue.issuer import record_of

        record = record_of(certificate, issuer, COMMON_NAME.replace(" ", "-"), PROFILE)
        self._inventory.add_certificates([record], self._clock.now())


def server_context(files: TlsFiles, trusted_pem: bytes) -> ssl.SSLContext:
    """The listener's context: TLS 1.2+, no tickets, client certificates requested
    (optional) and verified against ``trusted_pem`` (the CA certificates)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_TICKET | ssl.OP_NO_COMPRESSION
    context.num_tickets = 0  # TLS 1.3: no tickets at all (OP_NO_TICKET alone makes them stateful)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=trusted_pem.decode("ascii"))
    context.load_cert_chain(files.certificate_path, files.key_path)
    tune_openssl(context)
    return context


X509_PURPOSE_ANY = 7  # openssl/x509v3.h
SSL_CTRL_SET_SESS_CACHE_MODE = 44  # openssl/ssl.h; SSL_SESS_CACHE_OFF is 0


def tune_openssl(context: ssl.SSLContext) -> bool:
    """What Python's ssl module has no setter for, through ctypes on the context's SSL_CTX
    (the first field after the object header, checked: its verify mode must read back):

    - no server-side session cache, so no TLS 1.2 session-ID resumption either: every
      connection verifies the client certificate again (nothing outlives a revocation);
    - any purpose for client certificates: OpenSSL checks "SSL client" by default, which
      a server certificate (EKU serverAuth only) fails; servers renew over mTLS too, and
      whether a certificate may renew is the app's decision (a live server, client or peer
      certificate of the inventory).

    Returns False where that cannot be done (then only client and peer certificates
    authenticate, and TLS 1.2 sessions may resume by ID).
    """
    import ctypes
    import _ssl

    try:
        library = ctypes.CDLL(_ssl.__file__)
        get_mode, set_purpose = library.SSL_CTX_get_verify_mode, library.SSL_CTX_set_purpose
        control = library.SSL_CTX_ctrl
    except (OSError, AttributeError):
        return False
    get_mode.argtypes, get_mode.restype = [ctypes.c_void_p], ctypes.c_int
    set_purpose.argtypes, set_purpose.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_int
    control.argtypes, control.restype = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p], ctypes.c_long
    pointer = ctypes.c_void_p.from_address(id(context) + 2 * ctypes.sizeof(ctypes.c_ssize_t)).value
    if not pointer or get_mode(pointer) != 1:  # SSL_VERIFY_PEER: what CERT_OPTIONAL sets
        return False
    control(pointer, SSL_CTRL_SET_SESS_CACHE_MODE, 0, None)
    return set_purpose(pointer, X509_PURPOSE_ANY) == 1


def tls_extension(ssl_object) -> dict:
    """The ASGI TLS extension of a connection (``scope["extensions"]["tls"]``, as the ASGI
    TLS extension spec defines it): ``client_cert_chain`` holds the PEM of the certificate
    the client presented, or nothing when none was. With CERT_OPTIONAL a presented
    certificate that does not verify against the CA fails the handshake, so a certificate
    seen here verified (Python 3.11's ssl gives the leaf only, not the verified chain)."""
    if ssl_object is None:
        return {"client_cert_chain": [], "client_cert_error": None, "tls_version": None, "cipher_suite": None}
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    return {"client_cert_chain": chain, "client_cert_error": None,
            "tls_version": ssl_object.version(), "cipher_suite": (ssl_object.cipher() or (None,))[0]}
