"""The deploy request: parsed and validated once, before anything is written (pure).

Every refusal here is a ``UsageError`` with one sentence saying what was wrong, so
``mtlskit deploy`` fails before touching the target directory.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from mtlskit.errors import UsageError

SERVERS = ("nginx", "apache", "haproxy")
MODES = ("required", "optional")
REVOCATIONS = ("crl", "ocsp", "none")
ROUTE_KINDS = ("cn", "ou", "san")

# Which route kinds each server can match on the verified certificate.
# Nginx and HAProxy 2.6 expose the subject DN but no subjectAltName variable/fetch;
# Apache's mod_ssl exposes SSL_CLIENT_SAN_DNS_n and SSL_CLIENT_SAN_Email_n.
ROUTE_SUPPORT = {"nginx": ("cn", "ou"), "apache": ("cn", "ou", "san"), "haproxy": ("cn", "ou")}

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._@*+ -]{1,128}$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A host and port (IPv6 hosts without brackets)."""

    host: str
    port: int

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Upstream:
    scheme: str
    endpoint: Endpoint

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.endpoint.hostport}"


@dataclasses.dataclass(frozen=True)
class Route:
    """Send a verified identity whose ``kind`` (cn, ou, san) equals ``value`` to ``upstream``."""

    kind: str
    value: str
    upstream: Upstream


@dataclasses.dataclass(frozen=True)
class DeployOptions:
    """Everything the renderer needs to know about one deployment."""

    server: str
    name: str
    directory: Path
    listen: Endpoint
    upstream: Upstream
    mode: str = "required"
    require_on: tuple[str, ...] = ()
    revocation: str = "crl"
    routes: tuple[Route, ...] = ()
    standalone: bool = False
    reload_command: str | None = None
    ocsp_url: str | None = None
    run_user: str | None = None     # Apache standalone: User/Group it serves as when started as root
    run_group: str | None = None
    upstreams: tuple[Upstream, ...] = ()   # repeated --upstream: the whole pool, `upstream` first
    http2: bool = False
    staple: bool = False            # OCSP-staple the server certificate from ocsp_url (CA has a public URL)

    @property
    def tcp(self) -> bool:
        """--upstream tcp://: mTLS in front of a TCP service (nginx stream {}, HAProxy mode tcp)."""
        return self.upstream.scheme == "tcp"

    @property
    def pool(self) -> tuple[Upstream, ...]:
        """Every backend of the default route (one, unless --upstream was repeated)."""
        return self.upstreams or (self.upstream,)

    def to_json(self) -> dict:
        """The flags as recorded in the ``deployments`` table (no secrets)."""
        return {
            "listen": self.listen.hostport, "upstream": self.upstream.url, "mode": self.mode,
            "require_on": list(self.require_on), "revocation": self.revocation,
            "routes": [f"{r.kind}={r.value}:{r.upstream.endpoint.hostport}" for r in self.routes],
            "standalone": self.standalone, "ocsp_url": self.ocsp_url,
            "upstreams": [u.url for u in self.pool], "http2": self.http2, "staple": self.staple,
        }


def parse_listen(text: str) -> Endpoint:
    """``443``, ``:443``, ``0.0.0.0:443``, ``[::]:443`` -> Endpoint (host ``*`` = every address)."""
    text = text.strip()
    if text.isdigit():
        return Endpoint("*", _port(text, text))
    host, sep, port = text.rpartition(":")
    if not sep:
        raise UsageError(f"--listen {text!r} is not PORT or HOST:PORT", "for example --listen 0.0.0.0:443")
    host = host.strip("[]") or "*"
    if host != "*":
        _check_host(host, text)
    return Endpoint(host, _port(port, text))


def parse_upstream(text: str) -> Upstream:
    """``http://HOST:PORT``, ``https://HOST:PORT`` or ``HOST:PORT`` (taken as http)."""
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        raise UsageError(f"upstream {text!r} is not http(s)://HOST:PORT",
                         "for example --upstream http://127.0.0.1:8000")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"upstream {text!r} has an invalid port") from None
    _check_host(parts.hostname, text)
    return Upstream(parts.scheme, Endpoint(parts.hostname, port))


def parse_route(text: str) -> Route:
    """``cn=admin:127.0.0.1:8001`` -> Route(kind="cn", value="admin", upstream=...)."""
    kind, eq, rest = text.partition("=")
    kind = kind.strip().lower()
    value, colon, target = rest.partition(":")
    if not eq or kind not in ROUTE_KINDS or not colon:
        raise UsageError(f"--route {text!r} is not KIND=VALUE:HOST:PORT with KIND cn, ou or san",
                         "for example --route cn=admin:127.0.0.1:8001")
    if not _SAFE_VALUE.match(value):
        raise UsageError(f"--route value {value!r} must be 1-128 letters, digits or . _ @ * + - space")
    return Route(kind, value, parse_upstream(target))


def check_path(path: str) -> str:
    """A ``--require-on`` location: absolute, plain characters, no trailing slash."""
    if not _SAFE_PATH.match(path) or "//" in path or "/../" in path + "/" or "/./" in path + "/":
        raise UsageError(f"--require-on {path!r} must be an absolute URL path such as /admin")
    return path.rstrip("/") or "/"


def validate(options: DeployOptions) -> DeployOptions:
    """Refuse combinations a server cannot honour, with the reason.

    Raises:
        UsageError: unknown server/mode/revocation, --require-on without optional mode,
            OCSP on HAProxy or without a responder URL, a route kind the server cannot match.
    """
    _one_of("server", options.server, SERVERS)
    _one_of("--mode", options.mode, MODES)
    _one_of("--revocation", options.revocation, REVOCATIONS)
    if options.require_on and options.mode != "optional":
        raise UsageError("--require-on only makes sense with --mode optional",
                         "with --mode required every path already demands a certificate")
    if options.revocation == "ocsp":
        if options.server == "haproxy":
            raise UsageError("HAProxy cannot check client certificates by OCSP",
                             "use --revocation crl; mtlskit updates HAProxy's CRL through its admin socket")
        if not options.ocsp_url:
            raise UsageError("--revocation ocsp needs an OCSP responder URL",
                             "set public_url in mtlskit.toml (mtlskit serve answers at /ocsp)")
    for route in options.routes:
        if route.kind not in ROUTE_SUPPORT[options.server]:
            raise UsageError(f"{options.server} cannot route on {route.kind}= (it exposes no such "
                             f"client-certificate field)",
                             f"use one of: {', '.join(ROUTE_SUPPORT[options.server])}")
    if options.server == "haproxy" and options.upstream.scheme not in ("http", "tcp"):
        raise UsageError("the haproxy backend is plain HTTP to HOST:PORT",
                         "give --upstream HOST:PORT")
    check_pool(options)
    return options


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"{what} {value!r} is not one of: {', '.join(allowed)}")


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"{whole!r}: port must be a number from 1 to 65535")
    return int(text)


def _check_host(host: str, whole: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$", host):
        raise UsageError(f"{whole!r}: {host!r} is not an IP address or a host name")


def parse_upstreams(texts: list[str] | tuple[str, ...]) -> tuple[Upstream, ...]:
    """Every ``--upstream`` given, in order: one backend, or a pool when repeated.

    Raises:
        UsageError: a malformed upstream, or the same backend twice (a pool never
            silently drops or doubles a member).
    """
    pool = tuple(parse_tcp_upstream(text) if text.lower().startswith("tcp://") else parse_upstream(text)
                 for text in texts)
    seen: set[str] = set()
    for upstream in pool:
        if upstream.url in seen:
            raise UsageError(f"--upstream {upstream.url} is given twice", "list each backend of the pool once")
        seen.add(upstream.url)
    return pool


def check_pool(options: DeployOptions) -> None:
    """A pool's members all speak the protocol of the first (one proxy_pass / ProxyPass / backend),
    and a TCP service gets only what a TCP proxy can do."""
    schemes = {upstream.scheme for upstream in options.pool}
    if len(schemes) > 1:
        raise UsageError(f"the --upstream pool mixes {' and '.join(sorted(schemes))} backends",
                         "give every member of the pool the same scheme")
    if options.tcp:
        _check_tcp(options)
    if options.staple and not options.ocsp_url:
        raise UsageError("OCSP stapling needs the OCSP responder URL", "set public_url in mtlskit.toml")


def parse_tcp_upstream(text: str) -> Upstream:
    """``tcp://HOST:PORT``: a TCP service put behind mTLS."""
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme.lower() != "tcp" or not parts.hostname or not port or parts.path or parts.query \
            or parts.fragment or parts.username or parts.password:
        raise UsageError(f"upstream {text!r} is not tcp://HOST:PORT", "for example --upstream tcp://127.0.0.1:5432")
    _check_host(parts.hostname, text)
    return Upstream("tcp", Endpoint(parts.hostname, port))


def _check_tcp(options: DeployOptions) -> None:
    """What a TCP proxy cannot do: HTTP routing, headers, per-path rules, HTTP/2, OCSP."""
    if options.server == "apache":
        raise UsageError("apache cannot put mTLS in front of a TCP service",
                         "use nginx (stream) or haproxy (mode tcp) for --upstream tcp://")
    refused = [(options.mode != "required", "--mode optional"), (options.require_on, "--require-on"),
               (options.routes, "--route"), (options.http2, "--http2"),
               (options.revocation == "ocsp", "--revocation ocsp")]
    for present, flag in refused:
        if present:
            raise UsageError(f"{flag} does not apply to a tcp:// upstream (a TCP proxy sees no HTTP "
                             "and checks the certificate at the handshake only)",
                             "a tcp:// upstream takes --mode required and --revocation crl or none")
