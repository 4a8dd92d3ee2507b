"""The identity headers the upstream receives, byte-identical from Nginx, Apache and HAProxy.

Every generated configuration first removes every client-sent header of the identity
*family*: any name that, compared case-insensitively with ``_`` read as ``-``, starts with
``X-Client-``, ``X-SSL-``, ``SSL-Client`` or ``X-TLS-``, or is ``X-Forwarded-Client-Cert``
(CGI/WSGI gateways fold ``X_Client-Verify`` onto ``HTTP_X_CLIENT_VERIFY``; the other
prefixes are those of the guides users migrate from). Then it sets the headers below from
the TLS layer, so a client can never forge an identity.

=============================== =============================================================
Header                          Value (for the same certificate, the same bytes everywhere)
=============================== =============================================================
``X-Client-Verify``             ``SUCCESS`` when a client certificate was presented and
                                verified; ``NONE`` when none was presented (``--mode optional``).
                                Always sent. Nothing below is sent unless it is ``SUCCESS``.
``X-Client-Subject-DN``         subject DN as OpenSSL prints RFC 2253 (``CN=alice,O=Example``):
                                most specific RDN first, ``+`` inside a multi-valued RDN (whose
                                attributes are also reversed), ``,+"\\<>;`` and a leading ``#``
                                or space and a trailing space escaped with ``\\``, control
                                characters and every byte of a non-ASCII UTF-8 character as
                                ``\\XX`` (upper-case hex): ``O=Soci\\C3\\A9t\\C3\\A9``.
``X-Client-Issuer-DN``          issuer DN, same format.
``X-Client-CN``                 the first ``CN=`` value of ``X-Client-Subject-DN`` (the most
                                specific one), escaped as it is there; absent without a CN.
``X-Client-Serial``             serial number, upper-case hexadecimal, two digits per byte of
                                its magnitude (``0A1B...``; no ``00`` pad for a high bit).
``X-Client-Fingerprint-SHA256`` SHA-256 of the certificate's DER, upper-case hexadecimal.
``X-Client-Cert``               the certificate as OpenSSL writes PEM (64-character lines,
                                ``\\n`` line ends), every byte but ``A-Za-z0-9-._~``
                                percent-encoded upper case (``+``: ``%2B``, ``/``: ``%2F``,
                                ``=``: ``%3D``, newline: ``%0A``); ``urllib.parse.unquote`` and
                                form decoders (``unquote_plus``) both give the PEM back.
=============================== =============================================================

``expected_values`` computes all of them from a certificate, for an upstream or a test.
"""

from __future__ import annotations

import hashlib
import itertools
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:     # the CLI imports this module for --help: no cryptography import here
    from cryptography import x509

VERIFY = "X-Client-Verify"
SUBJECT_DN = "X-Client-Subject-DN"
ISSUER_DN = "X-Client-Issuer-DN"
CN = "X-Client-CN"
SERIAL = "X-Client-Serial"
FINGERPRINT_SHA256 = "X-Client-Fingerprint-SHA256"
CERT = "X-Client-Cert"

IDENTITY_HEADERS: tuple[str, ...] = (VERIFY, SUBJECT_DN, ISSUER_DN, CN, SERIAL, FINGERPRINT_SHA256, CERT)

# The family every server removes from client requests (with `_` read as `-`).
FAMILY_PREFIXES: tuple[str, ...] = ("X-Client-", "X-SSL-", "SSL-Client", "X-TLS-")
FAMILY_NAMES: tuple[str, ...] = ("X-Forwarded-Client-Cert",)

# HAProxy (`del-header -m reg`; HTX header names are lower case).
HAPROXY_FAMILY_REGEX = r"(?i)^(x[-_]client[-_]|x[-_]ssl[-_]|ssl[-_]client|x[-_]tls[-_]|x[-_]forwarded[-_]client[-_]cert$)"

# OpenSSL's short names (XN_FLAG_FN_SN) where cryptography's RFC 4514 names differ.
_OPENSSL_NAMES = {"1.2.840.113549.1.9.1": "emailAddress", "2.5.4.5": "serialNumber",
                  "2.5.4.42": "GN", "2.5.4.4": "SN", "2.5.4.12": "title"}
_COMMON_NAME = "2.5.4.3"


def in_family(name: str) -> bool:
    """Whether a client-sent header name belongs to the identity family (and is removed)."""
    folded = name.lower().replace("_", "-")
    return (folded.startswith(tuple(p.lower() for p in FAMILY_PREFIXES))
            or folded in {n.lower() for n in FAMILY_NAMES})


def spellings(name: str) -> list[str]:
    """Every `-`/`_` spelling of a name (``X-TLS-`` -> ``X-TLS-``, ``X-TLS_``, ``X_TLS-``, ``X_TLS_``)."""
    parts = name.split("-")
    return ["".join(itertools.chain.from_iterable(zip(parts, seps + ("",))))
            for seps in itertools.product("-_", repeat=len(parts) - 1)]


def nginx_clear_patterns() -> list[str]:
    """headers-more ``more_clear_input_headers`` arguments (case-insensitive, ``*`` only at the end)."""
    return ([s + "*" for p in FAMILY_PREFIXES for s in spellings(p)]
            + [s for n in FAMILY_NAMES for s in spellings(n)])


def escape_dn_value(value: str) -> str:
    """One attribute value escaped as OpenSSL's XN_FLAG_RFC2253 prints it."""
    out = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;' or (index == 0 and char in "# ") or (index == len(value) - 1 and char == " "):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F or ord(char) > 0x7F:
            out.extend(f"\\{byte:02X}" for byte in char.encode())
        else:
            out.append(char)
    return "".join(out)


def _attribute(attribute: x509.NameAttribute) -> str:
    name = _OPENSSL_NAMES.get(attribute.oid.dotted_string) or attribute.rfc4514_string().split("=", 1)[0]
    return f"{name}={escape_dn_value(attribute.value)}"


def dn_string(name: x509.Name) -> str:
    """A name as the three servers print it: every attribute in reverse, `+` within an RDN."""
    parts = []
    for rdn in reversed(name.rdns):
        parts.append("+".join(_attribute(a) for a in reversed(list(rdn))))
    return ",".join(parts)


def first_cn(name: x509.Name) -> str | None:
    """The escaped value of the first CN of ``dn_string(name)``."""
    for rdn in reversed(name.rdns):
        for attribute in reversed(list(rdn)):
            if attribute.oid.dotted_string == _COMMON_NAME:
                return escape_dn_value(attribute.value)
    return None


def serial_hex(serial: int) -> str:
    """Upper-case hex, two digits per byte of the magnitude."""
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex().upper()


def escape_pem(pem: str) -> str:
    """Percent-encode every byte but ``A-Za-z0-9-._~`` (upper-case hex)."""
    return urllib.parse.quote(pem, safe="-._~")


def expected_values(cert: x509.Certificate) -> dict[str, str]:
    """The headers a verified ``cert`` gives the upstream, from any of the three servers."""
    from cryptography.hazmat.primitives.serialization import Encoding

    values = {
        VERIFY: "SUCCESS", SUBJECT_DN: dn_string(cert.subject), ISSUER_DN: dn_string(cert.issuer),
        CN: first_cn(cert.subject), SERIAL: serial_hex(cert.serial_number),
        FINGERPRINT_SHA256: hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper(),
        CERT: escape_pem(cert.public_bytes(Encoding.PEM).decode()),
    }
    return {name: value for name, value in values.items() if value is not None}
