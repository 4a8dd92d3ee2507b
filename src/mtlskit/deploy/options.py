"""The deploy request: parsed and validated once, before anything is written (pure).

Every refusal here is a ``UsageError`` with one sentence saying what was wrong, so
``mtlskit deploy`` fails before touching the target directory.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from mtlskit.deploy import authz, grammar
from mtlskit.errors import UsageError
from mtlskit.pki.names import check_name, shown

SERVERS = ("nginx", "apache", "haproxy")
MODES = ("required", "optional")
REVOCATIONS = ("crl", "ocsp", "none")
ROUTE_KINDS = ("cn", "ou", "san")

# Which route kinds each server can match on the verified certificate.
# Nginx and HAProxy 2.6 expose the subject DN but no subjectAltName variable/fetch;
# Apache's mod_ssl exposes SSL_CLIENT_SAN_DNS_n and SSL_CLIENT_SAN_Email_n.
ROUTE_SUPPORT = {"nginx": ("cn", "ou"), "apache": ("cn", "ou", "san"), "haproxy": ("cn", "ou")}

# Every pattern matches the whole text (\A...\Z): "$" also matches before a trailing newline.
_LISTEN = re.compile(r"\A(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.*-]*):)?(?P<port>[0-9]+)\Z")
_HOSTPORT = re.compile(r"\A(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>[0-9]+))?/?\Z")
UPSTREAM_SCHEMES = {"http": 80, "https": 443}    # scheme -> default port


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
    policy: Path | None = None      # --policy: auth_request to `mtlskit serve` /authz (deploy/authz.py)
    authz_url: str | None = None    # where `mtlskit serve` answers /authz (default: public_url)
    authz_secret: str | None = dataclasses.field(default=None, repr=False)   # never recorded

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
            **authz.recorded(self),
        }


def parse_listen(text: str) -> Endpoint:
    """``443``, ``:443``, ``0.0.0.0:443``, ``[::]:443`` -> Endpoint (host ``*`` = every address)."""
    match = _LISTEN.match(text)
    if not match:
        raise UsageError(f"--listen {shown(text)} is not PORT or HOST:PORT", "for example --listen 0.0.0.0:443")
    host = (match["host"] or "*").strip("[]") or "*"
    if host != "*":
        grammar.check_host(host, "--listen")
    return Endpoint(host, grammar.check_port(match["port"], "--listen"))


def parse_upstream(text: str, option: str = "--upstream") -> Upstream:
    """One upstream: ``http://HOST:PORT``, ``https://HOST:PORT`` or ``HOST:PORT`` (taken as http).

    The port defaults to the scheme's; a trailing ``/`` is allowed, any other path,
    query, user or fragment is not.
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "http", text
    match = _HOSTPORT.match(rest)
    if scheme not in UPSTREAM_SCHEMES or not match:
        raise UsageError(f"{option} {shown(text)} is not http(s)://HOST:PORT",
                         "for example --upstream http://127.0.0.1:8000")
    host = grammar.check_host(match["host"].strip("[]"), option)
    port = grammar.check_port(match["port"], option) if match["port"] else UPSTREAM_SCHEMES[scheme]
    return Upstream(scheme, Endpoint(host, port))


def parse_route(text: str) -> Route:
    """``cn=admin:127.0.0.1:8001`` -> Route(kind="cn", value="admin", upstream=...)."""
    kind, eq, rest = text.partition("=")
    value, colon, target = rest.partition(":")
    if not eq or kind.lower() not in ROUTE_KINDS or not colon:
        raise UsageError(f"--route {shown(text)} is not KIND=VALUE:HOST:PORT with KIND cn, ou or san",
                         "for example --route cn=admin:127.0.0.1:8001")
    return Route(kind.lower(), grammar.check_route_value(value), parse_upstream(target, "--route"))


def check_path(path: str) -> str:
    """A ``--require-on`` location: absolute, plain characters, no trailing slash."""
    return grammar.check_url_path(path, "--require-on").rstrip("/") or "/"


def check_directory(directory: str | Path) -> Path:
    """The deployment directory, made absolute, in the strict path grammar (it is written
    into every configuration and into the default reload command)."""
    if not str(directory):
        raise UsageError("--dir is empty", hint="give the directory to write the deployment into")
    absolute = Path(directory).expanduser().absolute()
    return Path(grammar.check_absolute_path(str(absolute), "--dir"))


def validate(options: DeployOptions) -> DeployOptions:
    """Refuse combinations a server cannot honour, with the reason.

    Raises:
        UsageError: unknown server/mode/revocation, --require-on without optional mode,
            OCSP on HAProxy or without a responder URL, a route kind the server cannot match.
    """
    _one_of("server", options.server, SERVERS)
    _one_of("--mode", options.mode, MODES)
    _one_of("--revocation", options.revocation, REVOCATIONS)
    check_values(options)
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
    authz.check_options(options)
    return options


def check_values(options: DeployOptions) -> None:
    """Every value the templates write, checked again whoever built the options (CLI, API,
    tests): the configuration grammar must not depend on the caller having parsed them.
    ``render`` calls it too, so no template ever sees an unchecked value.

    Raises:
        UsageError, BadInput: naming the option whose value is refused.
    """
    check_name(options.name, "--name")
    grammar.check_absolute_path(str(options.directory), "--dir")
    if options.listen.host != "*":
        grammar.check_host(options.listen.host, "--listen")
    for upstream in (*options.pool, *(route.upstream for route in options.routes)):
        grammar.check_host(upstream.endpoint.host, "--upstream")
        grammar.check_port(str(upstream.endpoint.port), "--upstream")
        _one_of("upstream scheme", upstream.scheme, (*UPSTREAM_SCHEMES, "tcp"))
    for route in options.routes:
        grammar.check_route_value(route.value)
    for path in options.require_on:
        grammar.check_url_path(path, "--require-on")
    if options.reload_command is not None:
        grammar.check_reload(options.reload_command)
    if options.ocsp_url is not None:
        grammar.check_url(options.ocsp_url, "OCSP responder URL (public_url)")
    for user, what in ((options.run_user, "run user"), (options.run_group, "run group")):
        if user is not None:
            grammar.check_user(user, what)
    authz.check_values(options)


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"{what} {shown(value)} is not one of: {', '.join(allowed)}")


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
    scheme, sep, rest = text.partition("://")
    match = _HOSTPORT.match(rest) if sep and scheme.lower() == "tcp" else None
    if match is None or not match["port"] or rest.endswith("/"):
        raise UsageError(f"--upstream {shown(text)} is not tcp://HOST:PORT",
                         "for example --upstream tcp://127.0.0.1:5432")
    host = grammar.check_host(match["host"].strip("[]"), "--upstream")
    return Upstream("tcp", Endpoint(host, grammar.check_port(match["port"], "--upstream")))


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
