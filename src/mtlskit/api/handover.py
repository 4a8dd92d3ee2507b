"""Issue through the service and hand the new key over in the answer, once: the REST API's
request and answer around :func:`mtlskit.issue.identity.issue_handed_over` (the workflow the
web UI's downloads use too: a private scratch directory, removed before the answer leaves;
the key exists on the CA host only while the request runs).
"""

from __future__ import annotations

import base64

from mtlskit.api.rest_models import IssueRequest


def issue_handed_over(service, authority, wanted: IssueRequest) -> tuple:
    """Issue as ``wanted`` says; the new record and what hands its key over: ``private_key``
    (PEM), or ``pkcs12`` (the bundle, base64) when asked.

    Raises:
        BadInput, UsageError, PolicyViolation: what `mtlskit issue` refuses, before anything is signed.
    """
    from mtlskit.issue.bundle import BundleOptions
    from mtlskit.issue.identity import issue_handed_over as issue_once
    from mtlskit.issue.issuer import IssueRequest as Request, SanRequest
    from mtlskit.issue.lifetime import requested_lifetime
    from mtlskit.issue.profiles import get_profile
    from mtlskit.issue.subject import SubjectOptions, defaults_of
    from mtlskit.pki.keys import KeyType
    from mtlskit.pki.pkcs12 import P12Profile

    profile = get_profile(wanted.profile)
    requested_lifetime(profile, wanted.days, wanted.hours)
    subject = SubjectOptions.parse(**wanted.subject.model_dump()).over(defaults_of(service.settings))
    sans = SanRequest(tuple(wanted.dns), tuple(wanted.ip), tuple(wanted.email), tuple(wanted.uri))
    request = Request(profile, wanted.name, sans, subject, wanted.days, wanted.hours)
    key_type = KeyType.parse(wanted.key_type)
    p12 = wanted.pkcs12
    options = BundleOptions(p12=p12 is not None,
                            p12_profile=P12Profile.parse(p12.profile) if p12 else P12Profile.MODERN,
                            p12_password=p12.password.encode("utf-8") if p12 else None)
    handed = issue_once(service, authority, request, key_type, options)
    if p12 is not None:
        return handed.record, {"pkcs12": base64.b64encode(handed.files["bundle.p12"]).decode("ascii")}
    return handed.record, {"private_key": handed.files["key.pem"].decode("ascii")}
