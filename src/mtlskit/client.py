"""Ready-made TLS client settings for talking mutual TLS from Python.

Every mTLS guide ends with the same boilerplate: create a context, load the client
certificate and key, trust the private CA, keep hostname checking on, refuse old
TLS. This module is that boilerplate, once::

    from mtlskit.client import ssl_context, httpx_client

    ctx = ssl_context(cert="alice/fullchain.pem", key="alice/key.pem", ca="alice/ca.pem")
    with httpx_client(cert="alice/fullchain.pem", key="alice/key.pem", ca="alice/ca.pem") as http:
        http.get("https://api.internal:8443/")

    # a PKCS#12 bundle from `mtlskit issue client alice --p12`
    ctx = ssl_context(p12="alice/bundle.p12", p12_password=b"secret", ca="alice/ca.pem")

    # requests (only if it is installed)
    session = requests_session(cert="alice/fullchain.pem", key="alice/key.pem", ca="alice/ca.pem")

Give ``fullchain.pem`` (certificate + intermediate) as ``cert``: a server that trusts
only the root needs the intermediate (``mtlskit probe`` reports
``client-chain-incomplete`` otherwise).
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mtlskit.errors import BadInput, UsageError

PathLike = str | os.PathLike


def ssl_context(cert: PathLike | None = None, key: PathLike | None = None, ca: PathLike | None = None, *,
                p12: PathLike | None = None, p12_password: bytes | str | None = None,
                key_password: bytes | str | None = None,
                minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for a TLS client that presents a certificate.

    Args:
        cert: client certificate PEM (best: fullchain.pem); the key may be in it too.
        key: its private key PEM (default: read from ``cert``).
        ca: CA certificate(s) that sign the *server* certificate; default: the system store.
        p12: a PKCS#12 bundle instead of ``cert``/``key``.
        p12_password: the bundle's password.
        key_password: the password of an encrypted ``key``.
        minimum_version: the oldest TLS version accepted (TLS 1.2 unless raised).

    Returns:
        A context with certificate verification and hostname checking on.

    Raises:
        UsageError: both ``cert`` and ``p12`` given, or ``key`` without ``cert``.
        BadInput: a file is missing or does not hold what it should, a wrong password.
    """
    if p12 is not None and (cert is not None or key is not None):
        raise UsageError("give either cert/key or p12, not both")
    if key is not None and cert is None:
        raise UsageError("a key needs its certificate")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca is not None:
        _load_ca(context, Path(ca))
    context.minimum_version = max(minimum_version, ssl.TLSVersion.TLSv1_2)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if p12 is not None:
        _load_p12(context, Path(p12), p12_password)
    elif cert is not None:
        _load_pair(context, Path(cert), Path(key) if key else None, key_password)
    return context


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    try:
        context.load_verify_locations(cafile=str(ca))
    except FileNotFoundError:
        raise BadInput(f"CA file {ca} does not exist") from None
    except ssl.SSLError:
        raise BadInput(f"{ca} does not hold CA certificates in PEM") from None


def _load_pair(context: ssl.SSLContext, cert: Path, key: Path | None, password: bytes | str | None) -> None:
    try:
        context.load_cert_chain(str(cert), str(key) if key else None, password=password)
    except FileNotFoundError as exc:
        raise BadInput(f"{exc.filename or cert} does not exist") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise BadInput(f"the key {key or cert} does not belong to the certificate {cert}",
                           hint="use the key.pem written together with this certificate") from None
        raise BadInput(f"cannot load the client certificate {cert} and key {key or cert}: {exc.reason}",
                       hint="give PEM files; an encrypted key needs key_password") from None


def _load_p12(context: ssl.SSLContext, p12: Path, password: bytes | str | None) -> None:
    """ssl loads certificates only from files: the key goes to a private temporary
    directory, encrypted with a one-time password, and is deleted at once."""
    secret = password.encode() if isinstance(password, str) else password
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(p12.read_bytes(), secret)
    except FileNotFoundError:
        raise BadInput(f"PKCS#12 file {p12} does not exist") from None
    except ValueError:
        raise BadInput(f"cannot open the PKCS#12 bundle {p12}", hint="check the password") from None
    if key is None or cert is None:
        raise BadInput(f"the PKCS#12 bundle {p12} has no certificate with its key")
    one_time = secrets.token_urlsafe(24).encode()
    with tempfile.TemporaryDirectory(prefix="mtlskit-") as tmp:
        path = Path(tmp) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(one_time)))
            for c in [cert, *extra]:
                fh.write(c.public_bytes(serialization.Encoding.PEM))
        context.load_cert_chain(str(path), password=one_time)


def httpx_client(*, async_: bool = False, **kwargs: Any):
    """An ``httpx.Client`` (or ``AsyncClient`` with ``async_=True``) using :func:`ssl_context`.

    Keyword arguments of :func:`ssl_context` configure TLS; the rest go to httpx.
    """
    import httpx

    tls = {k: kwargs.pop(k) for k in list(kwargs) if k in _CONTEXT_ARGS}
    cls = httpx.AsyncClient if async_ else httpx.Client
    return cls(verify=ssl_context(**tls), **kwargs)


def requests_session(**kwargs: Any):
    """A ``requests.Session`` whose HTTPS connections use :func:`ssl_context`.

    Raises:
        UsageError: requests is not installed (it is not a dependency of mtlskit).
    """
    try:
        import requests
        from requests.adapters import HTTPAdapter
    except ImportError:
        raise UsageError("requests is not installed", hint="pip install requests, or use httpx_client") from None
    context = ssl_context(**kwargs)

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kw):
            kw["ssl_context"] = context
            return super().init_poolmanager(*args, **kw)

    session = requests.Session()
    session.mount("https://", _Adapter())
    return session


_CONTEXT_ARGS = {"cert", "key", "ca", "p12", "p12_password", "key_password", "minimum_version"}
