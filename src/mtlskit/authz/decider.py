"""The decision of ``/authz``: which deployment asks (its shared secret), who the client is
(its certificate in the inventory, by fingerprint), and whether a rule allows the request.

Nothing the caller says about the certificate itself is believed: Nginx passes only the
SHA-256 fingerprint of the certificate it verified, and the identity is read from the
inventory's copy of that certificate. An unknown fingerprint (a certificate this CA did
not issue) is denied; so is a revoked, expired or not yet valid one.

Revocation counts on the next request without any reload: identities are cached by
fingerprint and the cache is dropped whenever the inventory may have changed (the same
change watch as the OCSP source, :mod:`mtlskit.store.changes`), and at least every
``refresh_seconds``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Protocol

from cryptography import x509

from mtlskit.authz.identity import Identity, first_rule, identity_of
from mtlskit.authz.policy import Policy, load_policy
from mtlskit.clock import Clock
from mtlskit.errors import MtlskitError
from mtlskit.store.inventory import CertificateRecord, Status

log = logging.getLogger("mtlskit.authz")
MAX_CACHED = 10_000
_FINGERPRINT = re.compile(r"\A[0-9A-Fa-f]{64}\Z")


@dataclasses.dataclass(frozen=True)
class AuthzDeployment:
    """A deployment whose server asks ``/authz``: its name, the SHA-256 (hex) of its shared
    secret, and the policy file it was deployed with."""

    name: str
    secret_sha256: str
    policy_path: Path


@dataclasses.dataclass(frozen=True)
class Decision:
    rule: str | None     # the allowing rule's name; None: denied
    reason: str          # one short phrase for logs ("allowed", "revoked", "no rule", ...)

    @property
    def allowed(self) -> bool:
        return self.rule is not None


class CertificateLookup(Protocol):
    def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None: ...


class ChangeWatch(Protocol):
    def moved(self) -> bool: ...


class Authorizer:
    """Decides ``/authz`` subrequests for every recorded deployment with a policy."""

    def __init__(self, lookup: CertificateLookup, clock: Clock, watch: ChangeWatch | None,
                 deployments: Callable[[], list[AuthzDeployment]], refresh_seconds: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lookup, self._clock, self._watch = lookup, clock, watch
        self._deployments_source = deployments
        self._refresh, self._monotonic = refresh_seconds, monotonic
        self._next_refresh = 0.0
        self._identities: dict[str, tuple[CertificateRecord, Identity] | None] = {}
        self._policies: dict[str, Policy | None] = {}      # secret sha256 -> policy (None: unreadable)
        self._loaded: dict[tuple, Policy | None] = {}      # (path, mtime, size) -> policy

    @property
    def enabled(self) -> bool:
        """Whether any deployment has a policy; asked first on each request, it is also where
        the caches are dropped when the inventory moved (one change-watch read per request)."""
        self._fresh()
        return bool(self._policies)

    def policy_for(self, secret: bytes) -> tuple[bool, Policy | None]:
        """(the secret is a deployment's, its policy or None when the file cannot be read).
        Every recorded secret is compared, in constant time."""
        digest = hashlib.sha256(secret).hexdigest()
        found, policy = False, None
        for secret_sha256, candidate in self._policies.items():
            if hmac.compare_digest(digest, secret_sha256):
                found, policy = True, candidate
        return found, policy

    def decide(self, policy: Policy, fingerprint: str, method: str, path: str) -> Decision:
        """Whether the certificate of ``fingerprint`` may ``method`` ``path`` under ``policy``."""
        if not _FINGERPRINT.match(fingerprint):
            return Decision(None, "no verified client certificate")
        known = self._identity(fingerprint.lower())
        if known is None:
            return Decision(None, "certificate not issued by this CA")
        record, identity = known
        status = record.status_at(self._clock.now())
        if status is not Status.VALID:
            return Decision(None, f"certificate {status.value}")
        rule = first_rule(policy, identity, method, path)
        return Decision(rule.name, "allowed") if rule else Decision(None, "no rule allows it")

    def _fresh(self) -> None:
        moved = self._watch is not None and self._watch.moved()
        now = self._monotonic()
        if not moved and now < self._next_refresh:
            return
        self._next_refresh = now + self._refresh
        self._identities.clear()
        self._reload_policies()

    def _identity(self, fingerprint: str) -> tuple[CertificateRecord, Identity] | None:
        if fingerprint in self._identities:
            return self._identities[fingerprint]
        record = self._lookup.by_fingerprint(fingerprint)
        found = None
        if record is not None:
            found = record, identity_of(x509.load_pem_x509_certificate(record.pem.encode()), record.issuer)
        if len(self._identities) >= MAX_CACHED:
            self._identities.clear()
        self._identities[fingerprint] = found
        return found

    def _reload_policies(self) -> None:
        policies, loaded = {}, {}
        for deployment in self._deployments_source():
            key = _file_key(deployment.policy_path)
            if key not in loaded:
                loaded[key] = self._loaded[key] if key in self._loaded else _load(deployment)
            policies[deployment.secret_sha256.lower()] = loaded[key]
        self._policies, self._loaded = policies, loaded


def _file_key(path: Path) -> tuple:
    try:
        info = os.stat(path)
    except OSError:
        return (str(path), None, None)
    return (str(path), info.st_mtime_ns, info.st_size)


def _load(deployment: AuthzDeployment) -> Policy | None:
    try:
        return load_policy(deployment.policy_path)
    except MtlskitError as exc:   # that deployment's requests are denied, the others go on
        log.error("deployment %s: policy not loaded, every request denied: %s", deployment.name, exc.message)
        return None
