"""Issue through the service and hand the new key over in the answer, once.

The workflow of `mtlskit issue` (:func:`mtlskit.issue.workflow.issue_batch`) writes a
bundle into a directory; here that directory is a private scratch one (0700, removed before
the answer leaves), and the inventory records no directory for the certificate (nothing on
the CA host to renew in place). The key exists on the CA host only while the request runs.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from mtlskit.api.rest_models import IssueRequest


def issue_handed_over(service, authority, wanted: IssueRequest) -> dict:
    """Issue as ``wanted`` says; the certificate's summary, PEM, chain and root, with the key
    (``private_key``, PEM) or the PKCS#12 bundle (``pkcs12``, base64) when asked.

    Raises:
        BadInput, UsageError, PolicyViolation: what `mtlskit issue` refuses, before anything is signed.
    """
    from mtlskit.issue.bundle import BundleOptions
    from mtlskit.issue.issuer import IssueRequest as Request, SanRequest
    from mtlskit.issue.lifetime import requested_lifetime
    from mtlskit.issue.profiles import get_profile
    from mtlskit.issue.subject import SubjectOptions, defaults_of
    from mtlskit.issue.workflow import issue_batch
    from mtlskit.pki.keys import KeyType
    from mtlskit.pki.pkcs12 import P12Profile

    profile = get_profile(wanted.profile)
    requested_lifetime(profile, wanted.days, wanted.hours)
    subject = SubjectOptions.parse(**wanted.subject.model_dump()).over(defaults_of(service.settings))
    sans = SanRequest(tuple(wanted.dns), tuple(wanted.ip), tuple(wanted.email), tuple(wanted.uri))
    request = Request(profile, wanted.name, sans, subject, wanted.days, wanted.hours)
    key_type = KeyType.parse(wanted.key_type)
    p12 = wanted.pkcs12
    options = BundleOptions(p12=p12 is not None, p12_profile=P12Profile.parse(p12.profile) if p12 else P12Profile.MODERN,
                            p12_password=p12.password.encode("utf-8") if p12 else None)
    with tempfile.TemporaryDirectory(prefix="mtlskit-issue-") as scratch:
        bundle = Path(scratch) / "bundle"
        [record] = issue_batch(service, authority, [request], [bundle], key_type, options, record_directories=False)
        handed = {"name": record.name, "serial": record.serial_hex, "issuer": record.issuer,
                  "profile": record.profile, "not_before": record.not_before.isoformat(),
                  "not_after": record.not_after.isoformat(), "certificate": record.pem,
                  "chain": (bundle / "chain.pem").read_text("ascii"), "ca": (bundle / "ca.pem").read_text("ascii")}
        if p12 is not None:
            handed["pkcs12"] = base64.b64encode((bundle / "bundle.p12").read_bytes()).decode("ascii")
        else:
            handed["private_key"] = (bundle / "key.pem").read_text("ascii")
    return handed
