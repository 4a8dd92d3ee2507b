"""Enrollment tokens: `mtlskit token create|list|revoke` and the enrollment they allow.

A token is 32 random bytes (URL-safe base64), shown once to the operator; the inventory
keeps only its SHA-256. It is bound to one NAME, one profile and the SANs given at
creation, and works once before it expires: :func:`enroll` claims it in the same
transaction that records the certificate, so of many concurrent uses exactly one wins,
and a failure after the claim (a signing error) rolls the claim back.

An enrolling host sends a CSR: its key is used; its names must be within the token's
(the CN may be the NAME or one of the token's DNS names, each SAN one of the token's);
the certificate carries the token's NAME and SANs, whatever the CSR asked for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets

from cryptography import x509

from mtlskit.errors import BadInput, PolicyViolation
from mtlskit.issue.csr import _requested_sans
from mtlskit.issue.issuer import IssueRequest, LeafTemplate, SanRequest, record_of, resolve_sans, validate_name
from mtlskit.issue.profiles import get_profile
from mtlskit.issue.subject import SubjectOptions
from mtlskit.pki import names
from mtlskit.pki.encoding import load_csr
from mtlskit.store import tokens as store
from mtlskit.store.inventory import CertificateRecord

MAX_TTL = dt.timedelta(days=30)
DEFAULT_TTL = dt.timedelta(minutes=15)


class TokenRefused(PolicyViolation):
    """An enrollment token that is unknown, used, expired or revoked."""

    code = "token-refused"


class NamesNotAllowed(PolicyViolation):
    """A CSR asking for names its token does not allow."""

    code = "names-not-allowed"


@dataclasses.dataclass(frozen=True)
class TokenGrant:
    """What a token allows: one NAME, a profile, SANs, subject fields and a lifetime."""

    name: str
    profile: str
    sans: SanRequest = SanRequest()
    days: int | None = None
    hours: int | None = None
    subject: SubjectOptions = SubjectOptions()

    def as_json(self) -> dict:
        return {"dns": list(self.sans.dns), "ip": list(self.sans.ip), "email": list(self.sans.email),
                "uri": list(self.sans.uri), "days": self.days, "hours": self.hours,
                "subject": self.subject.as_dict()}

    @classmethod
    def from_record(cls, record: store.TokenRecord) -> "TokenGrant":
        grant = record.grant
        sans = SanRequest(*(tuple(grant.get(k, ())) for k in ("dns", "ip", "email", "uri")))
        subject = SubjectOptions.from_mapping(grant.get("subject") or {}, source="token")
        return cls(record.name, record.profile, sans, grant.get("days"), grant.get("hours"), subject)

    def request(self) -> IssueRequest:
        return IssueRequest(get_profile(self.profile), self.name, self.sans, self.subject, self.days, self.hours)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def create_token(service, grant: TokenGrant, ttl: dt.timedelta = DEFAULT_TTL) -> tuple[str, dt.datetime]:
    """A new token for ``grant``, valid for ``ttl``; (the token, its expiry). Only its hash is stored.

    Raises:
        BadInput: a bad NAME, SAN or profile; a ttl not within (0, 30 days].
        PolicyViolation: names or lifetime the CA would refuse at enrollment (checked now).
    """
    if not dt.timedelta(0) < ttl <= MAX_TTL:
        raise BadInput(f"--ttl must be more than 0 and at most {MAX_TTL.days} days")
    validate_name(grant.name)
    now = service.clock.now()
    _check_grant(service, grant)
    token = secrets.token_urlsafe(32)
    expires_at = now + ttl
    store.add_token(service.inventory, token_hash(token), grant.name, grant.profile, grant.as_json(), now, expires_at)
    return token, expires_at


def _check_grant(service, grant: TokenGrant) -> None:
    """What enrollment would refuse, refused now (without the CA key): lifetime, SANs,
    wildcards, name constraints."""
    from mtlskit.issue import policy
    from mtlskit.issue.lifetime import requested_lifetime

    request = grant.request()
    sans = resolve_sans(request)
    requested_lifetime(request.profile, grant.days, grant.hours)
    names.subject_name(grant.name, grant.subject.attributes())
    policy.check_san_count(sans)
    policy.check_required_sans(request.profile, sans)
    policy.check_wildcards(request.profile, sans)
    cas = list(service.ca_certificates().values())
    policy.check_names_within(policy.name_constraints_of(cas), sans, grant.name)


def list_tokens(service) -> list[store.TokenRecord]:
    return store.all_tokens(service.inventory)


def revoke_tokens(service, name: str) -> int:
    """Revoke every pending token of NAME.

    Raises:
        NotFound: NAME has no pending token.
    """
    from mtlskit.errors import NotFound

    count = store.expire_tokens(service.inventory, name, service.clock.now())
    if not count:
        raise NotFound(f"no pending enrollment token for {names.shown(name)}",
                       hint="`mtlskit token list` shows them")
    return count


def enroll(service, authority, token: str, csr_pem: bytes) -> tuple[x509.Certificate, CertificateRecord]:
    """Sign the CSR under what the token allows, using the token up; the token never
    appears in an error or an audit event.

    Raises:
        TokenRefused: unknown, used, expired or revoked token.
        BadInput: not a CSR, or its signature does not verify.
        NamesNotAllowed: the CSR asks for a name the token does not allow.
        PolicyViolation: a weak key.
    """
    digest = token_hash(token)
    record = store.find_token(service.inventory, digest)
    now = service.clock.now()
    _check_usable(record, now)
    grant = TokenGrant.from_record(record)
    csr = load_csr(csr_pem)
    if not csr.is_signature_valid:
        raise BadInput("the CSR's signature does not verify (corrupted, or not signed by its key)")
    request = grant.request()
    sans = resolve_sans(request)
    _check_within(csr, grant.name, sans)
    template = LeafTemplate(authority, request.profile, service.settings.public_url, now, grant.days, grant.hours)
    with service.inventory.transaction() as tx:
        if not store.claim(tx, digest, now):
            _check_usable(store.find_token(service.inventory, digest), now, raced=True)
        certificate = template.sign(names.subject_name(grant.name, grant.subject.attributes()), sans,
                                    csr.public_key())
        signed = record_of(certificate, template.signer.name, grant.name, request.profile.name, sans)
        service.inventory.add_certificates([signed], now, action="enroll", session=tx)
        store.set_used_serial(tx, digest, signed.serial_hex)
    return certificate, signed


def _check_usable(record: store.TokenRecord | None, now: dt.datetime, raced: bool = False) -> None:
    if record is None:
        raise TokenRefused("unknown enrollment token", hint="ask the CA operator for a new one (`mtlskit token create`)")
    if record.used_at is not None:
        raise TokenRefused(f"this enrollment token (for {record.name}) was already used",
                           hint="a token works once; ask the CA operator for a new one")
    if record.expires_at <= now:
        raise TokenRefused(f"this enrollment token (for {record.name}) expired at {record.expires_at.isoformat()}",
                           hint="ask the CA operator for a new one (`mtlskit token create --ttl ...`)")
    if raced:  # the claim failed but the token reads usable: it was used meanwhile
        raise TokenRefused(f"this enrollment token (for {record.name}) was already used")


def _check_within(csr: x509.CertificateSigningRequest, name: str, allowed: list[x509.GeneralName]) -> None:
    allowed_text = [names.general_name_text(n) for n in allowed]
    extra = [names.general_name_text(n) for n in _requested_sans(csr)
             if names.general_name_text(n) not in allowed_text]
    common_name = names.common_name_of(csr.subject)
    if common_name is not None and common_name != name and f"DNS:{common_name}" not in allowed_text:
        extra.insert(0, f"CN={names.shown(common_name)}")
    if extra:
        raise NamesNotAllowed(
            f"the CSR asks for {', '.join(extra[:10])}, which the token for {name} does not allow "
            f"(it allows CN={name}{''.join(', ' + t for t in allowed_text)})",
            hint="request only the token's names, or ask the CA operator for a token with these names")
