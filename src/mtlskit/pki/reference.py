"""The switch between mtlskit's hand-written DER encoders and their references.

Each fast path that writes DER by hand (leaf certificates, CRL entries and CRLs, OCSP
responses) sits behind one narrow function, with the straightforward implementation
through cryptography's builders beside it. ``MTLSKIT_REFERENCE_ENCODERS=1`` sends
every one of them to the reference, so the whole test suite can run on it
(``make test-reference``); property tests compare both byte for byte.

A test switch, not a setting: it is read where an encoder is chosen (once per batch
template, CRL, prepared OCSP response or call), not threaded through the configuration.
"""

from __future__ import annotations

import os

ENVIRONMENT_VARIABLE = "MTLSKIT_REFERENCE_ENCODERS"


def reference_encoders() -> bool:
    """True when ``MTLSKIT_REFERENCE_ENCODERS=1``: encode through cryptography's builders."""
    return os.environ.get(ENVIRONMENT_VARIABLE) == "1"
