"""Revocation from what each certificate names itself: the CRL at its distribution point
(RFC 5280 4.2.1.13) and the OCSP responder of its Authority Information Access (4.2.2.1).

Used when no CA home knows the certificate: ``probe`` asks both, ``verify`` fetches the
CRL when no --crl is given (and OCSP with --ocsp). Every fetch is bounded (fetch.py);
a fetch that fails is a ``crl-unavailable`` warning that says why, never silence.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from cryptography import x509

from mtlskit.verify import crl as crlmod
from mtlskit.verify import fetch
from mtlskit.verify.checks import describe
from mtlskit.verify.findings import Finding, warning
from mtlskit.verify.ocsp import OcspSource, ocsp_urls

GetUrl = Callable[[str], bytes]


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The URIs of the certificate's CRL distribution points that name the complete CRL
    of its issuer (points with a cRLIssuer or a reasons subset are not followed)."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [name.value for point in points if point.full_name and not point.crl_issuer and not point.reasons
            for name in point.full_name if isinstance(name, x509.UniformResourceIdentifier)]



def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in DER (what /crl/<ca>.crl serves) or PEM."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


class NamedUrlsSource:
    """A revocation source (see verifier.RevocationSource) that fetches what the path names.

    Args:
        timeout: seconds for each fetch.
        crl: fetch the CRL distribution points.
        ocsp: ask the OCSP responders.
        get: the GET used for CRLs (injected in tests); bounded by default.
    """

    def __init__(self, timeout: float = fetch.DEFAULT_TIMEOUT, *, crl: bool = True, ocsp: bool = True,
                 get: GetUrl | None = None) -> None:
        self.crl, self.timeout = crl, timeout
        self.get = get or (lambda url: fetch.http_get(url, fetch.MAX_CRL_BYTES, timeout))
        self.ocsp = OcspSource(lambda url, der: fetch.http_post(url, der, "application/ocsp-request",
                                                                fetch.MAX_OCSP_BYTES, timeout)) if ocsp else None

    def __call__(self, path: list[x509.Certificate], at: dt.datetime) -> list[Finding]:
        found: list[Finding] = []
        for cert, issuer in zip(path, path[1:]):
            if self.crl and crl_urls(cert):
                found += self.check_crl(cert, issuer, at)
            if self.ocsp is not None and ocsp_urls(cert):
                found += self.ocsp.check(cert, issuer, at)
        return found

    def covers(self, path: list[x509.Certificate]) -> bool:
        """Does some certificate below the anchor name a URL this source would ask?"""
        return any((self.crl and crl_urls(c)) or (self.ocsp is not None and ocsp_urls(c)) for c in path[:-1])

    def check_crl(self, cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> list[Finding]:
        urls = crl_urls(cert)
        reasons = []
        for url in urls:
            try:
                fetched = parse_crl(self.get(url))
            except fetch.FetchError as exc:
                reasons.append(str(exc))
                continue
            except ValueError:
                reasons.append(f"{url} did not answer with a CRL in DER or PEM")
                continue
            if fetched.issuer != issuer.subject:
                reasons.append(f"{url} served a CRL of {fetched.issuer.rfc4514_string()}, not of "
                               f"{issuer.subject.rfc4514_string()}")
                continue
            return crlmod.check_path_crls([cert, issuer], [fetched], at)
        return [warning("crl-unavailable", f"the revocation of {describe(cert)} was not checked: its CRL could "
                        f"not be fetched ({'; '.join(reasons)})",
                        "check that the CA's CRL server (mtlskit serve) is running and reachable from here, "
                        "or pass the CA's CRL with --crl")]


class Fallback:
    """``source``, asked only for paths that none of ``before`` covers (verify asks the
    network only when neither --crl nor the inventory can answer)."""

    def __init__(self, source: NamedUrlsSource, before: list) -> None:
        self.source, self.before = source, before

    def __call__(self, path: list[x509.Certificate], at: dt.datetime) -> list[Finding]:
        if any(getattr(s, "covers", lambda _: True)(path) for s in self.before):
            return []
        return self.source(path, at)

    def covers(self, path: list[x509.Certificate]) -> bool:
        return self.source.covers(path)
