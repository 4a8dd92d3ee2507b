"""Local checks on certificates that do not need a path: time, purpose, key, structure.

Pure functions over ``cryptography`` objects; each returns a list of findings.
These cover what ``cryptography.x509.verification`` leaves to the caller or only
reports as one opaque error (so the user learns *which* rule failed).
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.verify.findings import Finding, error, warning


class Purpose(str, enum.Enum):
    """What the end-entity certificate is checked for (the TLS side it authenticates)."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def eku(self) -> x509.ObjectIdentifier:
        return ExtendedKeyUsageOID.CLIENT_AUTH if self is Purpose.CLIENT else ExtendedKeyUsageOID.SERVER_AUTH


def describe(cert: x509.Certificate) -> str:
    """A short human name for a certificate: its CN, else the whole subject."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return f"'{cns[0].value}'"
    return f"'{cert.subject.rfc4514_string() or 'empty subject'}'"


def reissue_hint(profile: str) -> str:
    """How to replace an expired certificate with the commands that exist today."""
    return (f"issue a new one under the same name (mtlskit issue {profile} NAME --out NEW_DIR) and install "
            "its cert.pem, chain and key.pem in place of the old ones")


def reason_note(reason: x509.ReasonFlags | None) -> str:
    """" (reason: key-compromise)" for a revocation reason, in the words `mtlskit revoke
    --reason` takes; "" when there is none."""
    return f" (reason: {reason.name.replace('_', '-')})" if reason is not None else ""


def is_self_issued(cert: x509.Certificate) -> bool:
    """RFC 5280 3.2: subject and issuer names are the same."""
    return cert.subject == cert.issuer


def is_ca(cert: x509.Certificate) -> bool:
    bc = _ext(cert, x509.BasicConstraints)
    return bool(bc and bc.value.ca)


def _ext(cert: x509.Certificate, kind: type) -> x509.Extension | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except Exception:  # malformed extensions; check_parseable reports them
        return None


def check_parseable(cert: x509.Certificate, what: str = "certificate") -> list[Finding]:
    """Extensions are parsed lazily by cryptography; a duplicate or malformed one is an
    error RFC 5280 4.2 forbids ("a certificate MUST NOT include more than one instance")."""
    try:
        cert.extensions
    except Exception as exc:
        return [error("bad-certificate", f"the {what} {describe(cert)} has malformed extensions: {exc}",
                      "reissue it; the certificate is not valid X.509")]
    return []


def check_validity(cert: x509.Certificate, at: dt.datetime, *, what: str = "certificate",
                   purpose: "Purpose | None" = None) -> list[Finding]:
    """Expired or not yet valid at ``at`` (RFC 5280 4.1.2.5); ``purpose`` picks the hint's profile."""
    name = describe(cert)
    # Validity is encoded in whole seconds; compare at that granularity (limbo
    # rfc5280::validity::notafter-fractional, Mozilla bug 1715455).
    at = at.replace(microsecond=0)
    if at > cert.not_valid_after_utc:
        return [error("cert-expired",
                      f"the {what} {name} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                      reissue_hint(purpose.value if purpose else "client|server"))]
    if at < cert.not_valid_before_utc:
        return [error("cert-not-yet-valid",
                      f"the {what} {name} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                      "check the clock of this machine and of the issuing CA, or wait until then")]
    return []


def check_purpose(leaf: x509.Certificate, purpose: Purpose) -> list[Finding]:
    """Extended key usage and key usage for a TLS client or server (RFC 5280 4.2.1.3, 4.2.1.12).

    A missing EKU means "any purpose" under RFC 5280; we accept it with a warning.
    """
    found: list[Finding] = []
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    wanted = "clientAuth" if purpose is Purpose.CLIENT else "serverAuth"
    if eku is None:
        found.append(warning("eku-missing", f"{describe(leaf)} has no extended key usage, so any purpose is allowed",
                             f"issue certificates with the {wanted} extended key usage"))
    elif purpose.eku not in eku.value:
        have = ", ".join(getattr(o, "_name", o.dotted_string) for o in eku.value) or "none"
        found.append(error("wrong-purpose",
                           f"{describe(leaf)} is not valid for TLS {purpose.value} authentication "
                           f"(extended key usage: {have})",
                           f"issue a {purpose.value} certificate, with the {wanted} extended key usage"))
    ku = _ext(leaf, x509.KeyUsage)
    if ku is not None and not _ku_fits(ku.value, leaf.public_key(), purpose):
        found.append(error("key-usage",
                           f"the key usage of {describe(leaf)} does not allow a TLS {purpose.value} handshake",
                           "issue it with digitalSignature in the key usage"))
    return found


def _ku_fits(ku: x509.KeyUsage, key, purpose: Purpose) -> bool:
    # TLS 1.3 signs with the key (digitalSignature); TLS 1.2 RSA key transport on the
    # server side uses keyEncipherment (RFC 5246 7.4.2, RFC 5280 4.2.1.3).
    if ku.digital_signature:
        return True
    return purpose is Purpose.SERVER and isinstance(key, rsa.RSAPublicKey) and ku.key_encipherment


_GOOD_CURVES = {"secp256r1", "secp384r1", "secp521r1"}


def check_key(cert: x509.Certificate) -> list[Finding]:
    """Refuse keys no current TLS stack should trust: RSA under 2048 bits or not a multiple
    of 8, DSA, and elliptic curves other than P-256/P-384/P-521 (CA/B BR 6.1.5)."""
    try:
        key = cert.public_key()
    except Exception:  # unsupported algorithm (GOST, ...)
        return [error("weak-key", f"{describe(cert)} has a public key of an unsupported algorithm",
                      "use an EC P-256/P-384, RSA 2048+ or Ed25519 key")]
    problem = None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048 or key.key_size % 8:
            problem = f"an RSA key of {key.key_size} bits"
    elif type(key).__name__.startswith("DSA"):   # by name: cryptography 51 deprecates the dsa module
        problem = "a DSA key"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _GOOD_CURVES:
            problem = f"an EC key on curve {key.curve.name}"
    elif not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        problem = f"a {type(key).__name__} key"
    if problem is None:
        return []
    return [error("weak-key", f"{describe(cert)} has {problem}, which is not accepted",
                  "reissue it with an EC P-256/P-384, RSA 2048+ or Ed25519 key")]


def check_structure(path: list[x509.Certificate]) -> list[Finding]:
    """RFC 5280 and CA/B rules on a built path (leaf first, trust anchor last) that
    cryptography's verifier does not enforce."""
    found: list[Finding] = []
    leaf = path[0]
    if leaf.serial_number <= 0:
        found.append(error("bad-serial", f"{describe(leaf)} has a serial number that is not positive",
                           "reissue it; RFC 5280 4.1.2.2 requires a positive serial number"))
    for cert in path:
        found += check_parseable(cert)
        found += _check_key_ids(cert, cert is path[-1])
        pc = _ext(cert, x509.PolicyConstraints)
        if pc is not None and not pc.critical:
            found.append(error("bad-extension", f"{describe(cert)} has a non-critical policy constraints extension",
                               "reissue it; RFC 5280 4.2.1.11 requires it to be critical"))
    return found


def _check_key_ids(cert: x509.Certificate, anchor: bool) -> list[Finding]:
    ski = _ext(cert, x509.SubjectKeyIdentifier)
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    hint = "reissue the CA certificate with subject and authority key identifiers"
    if is_ca(cert) and ski is None:
        # RFC 5280 4.2.1.2: conforming CAs MUST include the SKI in all CA certificates.
        return [error("bad-extension", f"the CA certificate {describe(cert)} has no subject key identifier", hint)]
    # The trust anchor is an input, not a certificate under test (RFC 5280 6.1.1 (d)),
    # so a cross-signed anchor without AKI is accepted.
    if not anchor and not is_self_issued(cert) and (aki is None or aki.value.key_identifier is None):
        # RFC 5280 4.2.1.1: the keyIdentifier of the AKI MUST be in all non-self-signed certificates.
        return [error("bad-extension", f"{describe(cert)} has no authority key identifier", hint)]
    if anchor and is_self_issued(cert) and aki is not None:
        # CA/B BR 7.1.2.1.3: a root's AKI, if present, holds only a keyIdentifier equal to its SKI.
        value = aki.value
        if (value.authority_cert_issuer is not None or value.authority_cert_serial_number is not None
                or ski is None or value.key_identifier != ski.value.digest):
            return [error("bad-extension", f"the root {describe(cert)} has an authority key identifier that "
                          "does not match its own key identifier", hint)]
    return []


def check_common_name(leaf: x509.Certificate) -> list[Finding]:
    """A server certificate's CN must not name something its SANs do not (CA/B BR 7.1.4.3).

    Modern clients ignore the CN when SANs exist (RFC 6125 6.4.4), but legacy clients
    and every operator reading the certificate do not. Refused (error) is a CN that
    could be mistaken for a SAN: an IP address in another notation (hex, leading zeros,
    upper case, uncompressed IPv6), the same name in another case, an internationalized
    name (U-label, or an A-label not in the SANs), or a sibling host in a SAN's domain.
    Any other CN that is not a SAN copy is a warning.
    """
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    san = _ext(leaf, x509.SubjectAlternativeName)
    if not cns or san is None:
        return []
    dns = san.value.get_values_for_type(x509.DNSName)
    ips = [ip for ip in san.value.get_values_for_type(x509.IPAddress)
           if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))]
    for cn in (str(c.value) for c in cns):
        if cn in dns or cn in {str(ip) for ip in ips}:
            continue
        problem = _cn_problem(cn, dns)
        hint = "reissue the server certificate with the CN copied from one of its SANs, or without a CN"
        if problem:
            return [error("cn-mismatch", f"the common name {cn!r} {problem}", hint)]
        if _host_like(cn):
            return [warning("cn-not-in-san", f"the common name {cn!r} is not one of the subject alternative names",
                            hint)]
    return []


def _cn_problem(cn: str, dns: list[str]) -> str | None:
    ip = _loose_ip(cn)
    if ip is not None and str(ip) != cn:
        return f"is the IP address {ip} in a non-standard notation (RFC 5952 / dotted quad)"
    lower = cn.lower()
    if any(lower == name.lower() for name in dns):
        return "differs from a subject alternative name only in letter case"
    if not cn.isascii() or any(label.startswith("xn--") for label in lower.split(".")):
        return "is an internationalized name that is not one of the subject alternative names"
    parent = lower.partition(".")[2]
    if parent and any(name.lower().partition(".")[2] == parent for name in dns):
        return "names a host of the same domain that is not among the subject alternative names"
    return None


def _loose_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an address the way lenient resolvers do: 0x hex, leading zeros, any case."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text.lower().startswith("0x"):
        try:
            return ipaddress.IPv4Address(int(text, 16))
        except ValueError:
            return None
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts) and all(int(p) < 256 for p in parts):
        return ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
    return None


def _host_like(text: str) -> bool:
    return "." in text or ":" in text
