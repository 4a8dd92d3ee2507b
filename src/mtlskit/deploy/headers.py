"""The identity headers the upstream receives, identical for Nginx, Apache and HAProxy.

Every generated configuration first removes any client-sent copy of these headers
(and of their underscore spellings, which CGI/WSGI gateways fold onto the same
``HTTP_X_CLIENT_...`` variable), then sets them from the TLS layer, so a client can
never forge an identity.

==============================  ==============================================================
Header                          Value
==============================  ==============================================================
``X-Client-Verify``             ``SUCCESS`` when a client certificate was presented and
                                verified; ``NONE`` when none was presented (``--mode optional``).
                                Always sent. Nothing else is sent unless it is ``SUCCESS``.
``X-Client-Subject-DN``         subject distinguished name, RFC 4514/2253 order
                                (``CN=alice,O=Example``).
``X-Client-Issuer-DN``          issuer distinguished name, same format.
``X-Client-Serial``             serial number, upper-case hexadecimal (compare as an integer:
                                servers differ on a leading ``0``).
``X-Client-Fingerprint-SHA256`` SHA-256 of the certificate's DER, hexadecimal (HAProxy:
                                upper case; Apache: lower case via mod_lua). Nginx has no
                                SHA-256 variable; there the upstream derives it from
                                ``X-Client-Cert`` (see ``SHA256_NATIVE``).
``X-Client-Cert``               the certificate as PEM, percent-encoded (URL-escaped);
                                decode with ``urllib.parse.unquote``.
==============================  ==============================================================
"""

from __future__ import annotations

VERIFY = "X-Client-Verify"
SUBJECT_DN = "X-Client-Subject-DN"
ISSUER_DN = "X-Client-Issuer-DN"
SERIAL = "X-Client-Serial"
FINGERPRINT_SHA256 = "X-Client-Fingerprint-SHA256"
CERT = "X-Client-Cert"

IDENTITY_HEADERS: tuple[str, ...] = (VERIFY, SUBJECT_DN, ISSUER_DN, SERIAL, FINGERPRINT_SHA256, CERT)

# Servers able to compute the SHA-256 fingerprint themselves.
SHA256_NATIVE = {"nginx": False, "apache": True, "haproxy": True}


def spellings(header: str) -> tuple[str, str]:
    """The header and its underscore spelling; both are stripped from client requests."""
    return header, header.replace("-", "_")


def all_spellings() -> list[str]:
    """Every header name a generated configuration removes from client requests."""
    return [name for header in IDENTITY_HEADERS for name in spellings(header)]
