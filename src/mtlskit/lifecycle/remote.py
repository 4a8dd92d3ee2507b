"""The host side of remote enrollment and renewal, against `mtlskit serve --tls-port`.

The key is generated here and never leaves the host; only a CSR does.

Trust bootstrap (:func:`trusted_root`), as step does: the operator gives the root's
SHA-256 fingerprint. The root is fetched over TLS without verification (``GET
/ca/root.pem``: nothing secret is sent), its fingerprint compared, and only then is a
second, verified connection opened, whose server certificate must chain to that root and
name the URL's host; the token travels on that connection only. A wrong fingerprint
or a server certificate not chaining to the root is refused before the token is sent.

Renewal (:func:`renew_remote`) authenticates with the current certificate and key of the
directory as TLS client certificate, trusts the directory's ``ca.pem``, sends a CSR of a
new key, and writes the new files into the directory with the previous ones as
``*.prev`` (staged beside it, then exchanged in one rename, as local renewal does).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import shutil
import ssl
import urllib.parse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.clock import Clock, SystemClock
from mtlskit.errors import AlreadyExists, BadInput, CheckFailed, NotFound, PolicyViolation
from mtlskit.issue.bundle import BundleOptions, ChainPems, discard_staged, publish_staged, staging_name, write_bundle
from mtlskit.pki.keys import KeyType, generate_private_key, key_type_of, public_keys_match

ROOT_PATH = "/ca/root.pem"
TIMEOUT_SECONDS = 30.0
MAX_ANSWER = 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


@dataclasses.dataclass(frozen=True)
class Issued:
    """What the CA sent back, and where it was written."""

    name: str
    serial: str
    not_after: str
    directory: Path
    previous_serial: str | None = None


class CaUnreachable(CheckFailed):
    code = "ca-unreachable"


# --- trust -----------------------------------------------------------------------------

def parse_fingerprint(text: str) -> str:
    """64 hex digits, with or without colons, any case -> lower-case hex.

    Raises:
        BadInput: anything else.
    """
    digits = text.strip().replace(":", "").lower()
    if not _HEX64.match(digits):
        raise BadInput("--fingerprint must be the root's SHA-256 fingerprint: 64 hex digits, colons allowed",
                       hint="the CA operator reads it with `openssl x509 -in HOME/ca/root.pem -noout "
                            "-fingerprint -sha256`")
    return digits


@dataclasses.dataclass(frozen=True)
class CaUrl:
    host: str
    port: int
    text: str

    @classmethod
    def parse(cls, url: str) -> "CaUrl":
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme != "https" or not parsed.hostname or parsed.path not in ("", "/") \
                or parsed.query or parsed.fragment or parsed.username:
            raise BadInput(f"--ca-url must be https://HOST:PORT (the TLS port of `mtlskit serve --tls-port`), "
                           f"not {url[:80]!r}")
        try:
            port = parsed.port or 443
        except ValueError:
            raise BadInput(f"--ca-url has a bad port: {url[:80]!r}") from None
        return cls(parsed.hostname, port, f"https://{parsed.netloc}")


def _context(root_pem: bytes | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if root_pem is None:  # only to fetch the root, whose fingerprint is checked after
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=root_pem.decode("ascii"))
    return context


def trusted_root(url: CaUrl, fingerprint: str, timeout: float = TIMEOUT_SECONDS) -> x509.Certificate:
    """The root served at ``url`` whose SHA-256 fingerprint is ``fingerprint``.

    Raises:
        PolicyViolation: the served root has another fingerprint.
        CaUnreachable: no answer, or not a certificate.
    """
    status, body, _ = _request(url, _context(None), "GET", ROOT_PATH, None, timeout)
    try:
        root = x509.load_pem_x509_certificate(body) if status == 200 else None
    except ValueError:
        root = None
    if root is None:
        raise CaUnreachable(f"{url.text}{ROOT_PATH} did not give a certificate (HTTP {status})",
                            hint="is it the TLS port of `mtlskit serve --tls-port`?")
    served = root.fingerprint(hashes.SHA256()).hex()
    if served != fingerprint:
        raise PolicyViolation(f"the CA at {url.text} serves a root whose SHA-256 fingerprint is {served}, "
                              f"not the {fingerprint} given; nothing was sent to it",
                              hint="check --ca-url and --fingerprint with the CA operator")
    return root


# --- HTTP ---------------------------------------------------------------------------------

def _request(url: CaUrl, context: ssl.SSLContext, method: str, path: str, payload: dict | None,
             timeout: float, authenticating: bool = False) -> tuple[int, bytes, str]:
    """(status, body, content type). Raises CaUnreachable, or PolicyViolation for a TLS
    server certificate that does not verify (before anything is sent)."""
    connection = http.client.HTTPSConnection(url.host, url.port, context=context, timeout=timeout)
    try:
        try:
            connection.connect()
        except ssl.SSLCertVerificationError as exc:
            raise PolicyViolation(f"the TLS certificate of {url.text} does not chain to the trusted root "
                                  f"or does not name {url.host} ({exc.verify_message}); nothing was sent",
                                  hint="check --ca-url (use a name the server's certificate carries)") from None
        except (ssl.SSLError, ConnectionResetError) as exc:
            if not authenticating:
                raise
            raise PolicyViolation(f"the CA at {url.text} refused the client certificate during the TLS "
                                  f"handshake: {_alert_text(str(getattr(exc, 'reason', '') or ''))}",
                                  hint="an expired certificate, or one not issued by this CA, cannot "
                                       "authenticate: enroll again with a new token (`mtlskit enroll`)") from None
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(MAX_ANSWER + 1)
        return response.status, data[:MAX_ANSWER], response.getheader("content-type") or ""
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise CaUnreachable(f"cannot reach the CA at {url.text}: {reason}") from None
    finally:
        connection.close()


def _alert_text(reason: str) -> str:
    for word, text in (("EXPIRED", "it has expired"), ("REVOKED", "it is revoked"),
                       ("UNKNOWN_CA", "it is not from this CA")):
        if word in reason:
            return text
    return "it has expired, is not yet valid, or is not from this CA"


def _answer(status: int, body: bytes) -> dict:
    """The JSON of a 201, or the CA's refusal as a domain error (never echoing the request)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if status == 201 and isinstance(data, dict):
        return data
    detail = data.get("detail") if isinstance(data, dict) else None
    hint = data.get("hint") if isinstance(data, dict) else None
    message = f"the CA refused (HTTP {status}): {detail or 'no explanation'}"
    if status == 404:
        raise NotFound(message, hint=hint)
    if status in (400, 413, 415):
        raise BadInput(message, hint=hint)
    if status in (401, 403, 409):
        raise PolicyViolation(message, hint=hint)
    raise CaUnreachable(message, hint=hint)


# --- certificates -----------------------------------------------------------------------

def _csr(key) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    algorithm = None if key_type_of(key) == KeyType.ED25519.value else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def _issued(data: dict, key, root: x509.Certificate) -> tuple[bytes, ChainPems]:
    """The certificate PEM and chain, checked: our key, issued along the chain to ``root``."""
    try:
        certificate = x509.load_pem_x509_certificate(data["certificate"].encode("ascii"))
        chain = x509.load_pem_x509_certificates(data["chain"].encode("ascii")) if data.get("chain") else []
        issuers = [*chain, root]
        certificate.verify_directly_issued_by(issuers[0])
        for child, parent in zip(chain, issuers[1:]):
            child.verify_directly_issued_by(parent)
    except (KeyError, AttributeError, ValueError, TypeError) as exc:
        raise CheckFailed(f"the CA's answer is not a certificate chained to the trusted root ({type(exc).__name__})") from None
    except Exception as exc:  # InvalidSignature and friends
        raise CheckFailed(f"the CA's certificate does not verify against the trusted root ({type(exc).__name__})") from None
    if not public_keys_match(key, certificate.public_key()):
        raise CheckFailed("the CA's certificate is not for the key generated here")
    return certificate.public_bytes(serialization.Encoding.PEM), ChainPems.of(chain, root)


def _check_out_free(out: Path) -> None:
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise AlreadyExists(f"{out} already exists and is not empty; refusing to overwrite",
                            hint="choose another --out, or move the old files away")
    if os.path.lexists(out.parent / staging_name(out.name)):
        raise AlreadyExists(f"{out.parent / staging_name(out.name)} is left over from an interrupted run; remove it")


def enroll_remote(ca_url: str, token: str, fingerprint: str, out: Path, *,
                  key_type: KeyType = KeyType.EC_P256, timeout: float = TIMEOUT_SECONDS) -> Issued:
    """Enroll with a single-use token: a key made here, a CSR sent, the bundle written to ``out``.

    Raises:
        BadInput: a bad URL or fingerprint; the CA found the request malformed.
        AlreadyExists: ``out`` is not empty.
        PolicyViolation: wrong fingerprint or TLS certificate (before the token is sent); the
            CA refused the token or the names.
        CaUnreachable, CheckFailed: the CA did not answer, or not with a good certificate.
    """
    url = CaUrl.parse(ca_url)
    expected = parse_fingerprint(fingerprint)
    out = Path(out)
    _check_out_free(out)
    root = trusted_root(url, expected, timeout)
    key = generate_private_key(key_type)
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    status, body, _ = _request(url, _context(root_pem), "POST", "/api/v1/enroll",
                               {"token": token, "csr": _csr(key).decode("ascii")}, timeout)
    data = _answer(status, body)
    cert_pem, chain = _issued(data, key, root)
    _write_new(out, data.get("name", out.name), key, cert_pem, chain)
    return Issued(data.get("name", ""), data.get("serial", ""), data.get("not_after", ""), out)


def _write_new(out: Path, name: str, key, cert_pem: bytes, chain: ChainPems) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.parent / staging_name(out.name)
    try:
        write_bundle(staged, name, key, cert_pem, chain, BundleOptions())
        if out.is_dir():
            out.rmdir()  # empty (checked): rename(2) replaces it anyway; a race leaves it refused
        publish_staged(staged, out)
    except BaseException:
        discard_staged(staged)
        raise


# --- renewal -----------------------------------------------------------------------------

def renew_remote(ca_url: str, cert_dir: Path, *, clock: Clock | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> Issued:
    """Renew the certificate of ``cert_dir`` over mTLS, authenticated by that certificate;
    write the new files there, the previous ones kept as ``*.prev``.

    Raises:
        BadInput: a bad URL; DIR lacks cert.pem, key.pem or ca.pem.
        PolicyViolation: the certificate has expired (checked here: it cannot authenticate),
            or the CA refused (revoked, superseded, unknown).
        CaUnreachable, CheckFailed: the CA did not answer, or not with a good certificate.
    """
    url = CaUrl.parse(ca_url)
    directory = Path(cert_dir)
    current, key, root = _load_directory(directory)
    now = (clock or SystemClock()).now()
    if current.not_valid_after_utc <= now:
        raise PolicyViolation(f"the certificate in {directory} expired at {current.not_valid_after_utc:%Y-%m-%d %H:%M} "
                              "UTC; an expired certificate cannot authenticate a renewal",
                              hint="enroll again with a new token (`mtlskit enroll`)")
    context = _context(root.public_bytes(serialization.Encoding.PEM))
    # TLS 1.2 when authenticating: a refused client certificate is then reported in the
    # handshake with its alert (in TLS 1.3 the refusal comes after it, as a bare close).
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / "fullchain.pem" if (directory / "fullchain.pem").exists()
                            else directory / "cert.pem", directory / "key.pem")
    new_key = generate_private_key(KeyType(key_type_of(key)))
    status, body, _ = _request(url, context, "POST", "/api/v1/renew", {"csr": _csr(new_key).decode("ascii")}, timeout,
                               authenticating=True)
    data = _answer(status, body)
    cert_pem, chain = _issued(data, new_key, root)
    _replace_files(directory, data.get("name", directory.name), new_key, cert_pem, chain)
    return Issued(data.get("name", ""), data.get("serial", ""), data.get("not_after", ""), directory,
                  format(current.serial_number, "x"))


def _load_directory(directory: Path):
    from mtlskit.fileio import InputRefused, read_input
    from mtlskit.pki.encoding import load_private_key

    try:
        certificate = x509.load_pem_x509_certificate(read_input(directory / "cert.pem"))
        key = load_private_key(read_input(directory / "key.pem", private=True))
        root = x509.load_pem_x509_certificate(read_input(directory / "ca.pem"))
    except (InputRefused, OSError, ValueError) as exc:
        raise BadInput(f"{directory}: needs cert.pem, key.pem (0600, not encrypted) and ca.pem as `mtlskit "
                       f"enroll` or `issue` write them ({exc})") from None
    if not public_keys_match(key, certificate.public_key()):
        raise BadInput(f"{directory}: key.pem is not the key of cert.pem")
    return certificate, key, root


def _replace_files(directory: Path, name: str, key, cert_pem: bytes, chain: ChainPems) -> None:
    from mtlskit.lifecycle.renew_files import _carry_over
    from mtlskit.lifecycle.swap_dirs import exchange

    staged = directory.parent / staging_name(directory.name)
    discard_staged(staged)
    try:
        write_bundle(staged, name, key, cert_pem, chain, BundleOptions())
        _carry_over(str(directory), str(staged))
        exchange(str(staged), str(directory))
    finally:
        shutil.rmtree(staged, ignore_errors=True)
