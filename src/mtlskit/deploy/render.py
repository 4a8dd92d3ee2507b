"""Options + paths -> server configuration text (pure; Jinja2 templates in ``templates/``).

``render`` returns the files to write, keyed by their name inside the deployment
directory; nothing here touches the disk. The templates comment every mTLS line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import jinja2

from mtlskit.deploy import authz, headers, keepalive, paths, quoting
from mtlskit.deploy.options import DeployOptions, check_values
from mtlskit.deploy.reload import SOCKET_PREFIX, signal_command

TEMPLATES = Path(__file__).parent / "templates"

# Mozilla Server Side TLS, "intermediate" profile: TLS 1.2 + 1.3, forward-secret AEAD
# suites only. (Its optional DHE-RSA suites are left out: they need a dhparam file and
# add nothing for clients that all speak ECDHE.)
MOZILLA_INTERMEDIATE_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])
TLS13_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

SITE_FILE = {"nginx": "mtls-server.conf", "apache": "mtls-vhost.conf", "haproxy": "mtls.cfg"}
MAIN_FILE = {"nginx": "nginx.conf", "apache": "httpd.conf", "haproxy": "haproxy.cfg"}
APACHE_MODULES = "/usr/lib/apache2/modules"   # Debian's module directory
NGINX_MODULES = "/usr/lib/nginx/modules"  # Debian's; include-only sites rely on modules-enabled/

DENY_BODY = "client certificate required"
APACHE_LUA_FILE = "mtls-identity.lua"    # identity headers (mod_lua), see headers.py
NGINX_JS_FILE = "mtls-identity.js"       # SHA-256 fingerprint and CN (njs), see headers.py
# Include-only deployments log where the server's own logs are (Debian's directories);
# --standalone ones into the deployment directory.
SERVER_LOG_DIR = {"nginx": "/var/log/nginx", "apache": "/var/log/apache2"}
# The script each site loads for its identity headers: file name -> template.
IDENTITY_HELPER = {"apache": (APACHE_LUA_FILE, "apache_identity.lua.j2"),
                   "nginx": (NGINX_JS_FILE, "nginx_identity.js.j2")}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each file of a deployment lives inside its directory."""

    directory: Path
    server: str

    @property
    def server_cert(self) -> Path:   # leaf + intermediates ("fullchain")
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:    # HAProxy finds the key as "<crt>.key" on its own
        return self.directory / "server.pem.key"

    @property
    def client_ca(self) -> Path:
        return self.directory / "client-ca.pem"

    @property
    def crl(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def revoked_serials(self) -> Path:   # HAProxy: revoked serials checked on every request
        return self.directory / "revoked-serials.lst"

    @property
    def site(self) -> Path:
        return self.directory / SITE_FILE[self.server]

    @property
    def main(self) -> Path:
        return self.directory / MAIN_FILE[self.server]

    @property
    def admin_socket(self) -> Path:
        return self.directory / "admin.sock"

    @property
    def pidfile(self) -> Path:   # standalone: the ``pid``/``PidFile``/``pidfile`` of *_main.j2
        return self.directory / {"nginx": "nginx.pid", "apache": "apache.pid", "haproxy": "haproxy.pid"}[self.server]


#: Where the system's own servers (Debian's packages) keep their PID or admin socket, for
#: include-only deployments: nginx.conf's ``pid``, apache2's envvars APACHE_PID_FILE, and
#: the ``stats socket`` of Debian's haproxy.cfg. Another layout: give ``--reload``.
SYSTEM_PIDFILES = {"nginx": Path("/run/nginx.pid"), "apache": Path("/run/apache2/apache2.pid"),
                   "haproxy": Path("/run/haproxy.pid")}   # Debian's haproxy.service: -Ws -p (the master)
SYSTEM_HAPROXY_SOCKET = Path("/run/haproxy/admin.sock")
RELOAD_SIGNALS = {"nginx": ("HUP", "nginx"), "apache": ("USR1", "apache2")}   # USR1: graceful


def default_reload(options: DeployOptions) -> str:
    """The reload recorded when the user gives no ``--reload``: signal the running server
    (``signal:SIG:PROGRAM:PIDFILE``), or HAProxy's admin socket (``socket:PATH``).
    Neither ever starts a server (``mtlskit.deploy.reload``)."""
    layout = Layout(options.directory, options.server)
    if options.server == "haproxy":
        return f"{SOCKET_PREFIX}{layout.admin_socket if options.standalone else SYSTEM_HAPROXY_SOCKET}"
    pidfile = layout.pidfile if options.standalone else SYSTEM_PIDFILES[options.server]
    return signal_command(*RELOAD_SIGNALS[options.server], pidfile)


def render(options: DeployOptions, verify_depth: int) -> dict[str, str]:
    """Render the configuration files of one deployment.

    Args:
        options: a validated deploy request.
        verify_depth: from ``bundle.verify_depth`` (CA certificates above a client leaf).

    Returns:
        file name (inside ``options.directory``) -> text. The site file always; with
        ``standalone`` also the complete configuration that runs on its own (for HAProxy,
        whose configuration has no include, the complete file replaces the site file).
    """
    layout = Layout(options.directory, options.server)
    site = render_site(options, verify_depth)
    files = {layout.site.name: site}
    if options.server in IDENTITY_HELPER:
        helper, template = IDENTITY_HELPER[options.server]
        files = {helper: _env().get_template(template).render(_context(options, layout, verify_depth)), **files}
    if not options.standalone:
        return files
    main = render_main(options, verify_depth, site, run_dir=layout.directory, site_path=layout.site)
    if options.server == "haproxy":
        return {layout.main.name: main}
    return {**files, layout.main.name: main}


def render_site(options: DeployOptions, verify_depth: int) -> str:
    """The include-only part: Nginx ``server {}``, Apache ``<VirtualHost>``, HAProxy frontend/backend."""
    layout = Layout(options.directory, options.server)
    return _env().get_template(_template(options, "site")).render(_context(options, layout, verify_depth))


def render_main(options: DeployOptions, verify_depth: int, site: str, run_dir: Path,
                site_path: Path) -> str:
    """A complete configuration around ``site`` whose pid, logs, sockets and temp files live in ``run_dir``.

    Used for ``--standalone`` (run_dir = the deployment directory) and to config-test an
    include-only site in a scratch directory.
    """
    layout = Layout(options.directory, options.server)
    context = _context(options, layout, verify_depth)
    return _env().get_template(_template(options, "main")).render(
        context, site=site, run=str(run_dir), site_path=str(site_path))


def _template(options: DeployOptions, part: str) -> str:
    """``nginx_site.j2``; for a tcp:// upstream ``nginx_stream_site.j2`` / ``haproxy_tcp_site.j2``."""
    kind = {"nginx": "_stream", "haproxy": "_tcp"}.get(options.server, "") if options.tcp else ""
    if options.server == "haproxy" and part == "main":
        kind = ""                 # one global/defaults section; the tcp frontend sets its own mode
    return f"{options.server}{kind}_{part}.j2"


def _context(options: DeployOptions, layout: Layout, verify_depth: int) -> dict:
    check_values(options)     # every template renders through here: no unchecked value
    return {
        "o": options, "layout": layout, "depth": verify_depth, "slug": slug(options.name),
        "short_id": hashlib.sha256(options.name.encode()).hexdigest()[:12],
        "ciphers": MOZILLA_INTERMEDIATE_CIPHERS, "tls13": TLS13_CIPHERSUITES,
        "h": headers, "deny_body": DENY_BODY,
        "apache_modules": APACHE_MODULES, "lua_file": APACHE_LUA_FILE,
        "nginx_modules": NGINX_MODULES, "js_file": NGINX_JS_FILE, "logs": log_files(options),
        "paths": paths, "keepalive": keepalive,
        "authz": authz, "authz_target": authz.target(options) if options.policy else None,
    }


def log_files(options: DeployOptions) -> dict[str, str]:
    """Per-request ("access") and handshake-refusal ("error") log files of a site.

    Empty for HAProxy, which writes no files: its site logs through the global ``log``
    target (standalone: stdout of the foreground process).
    """
    if options.server == "haproxy":
        return {}
    if options.standalone:
        return {"access": str(options.directory / "access.log"), "error": str(options.directory / "error.log")}
    base = f"{SERVER_LOG_DIR[options.server]}/mtls-{slug(options.name)}"
    return {"access": f"{base}-access.log", "error": f"{base}-error.log"}


def site_for_check(options: DeployOptions, site: str, run_dir: Path) -> str:
    """The site text with its log files moved into ``run_dir``.

    ``nginx -t`` opens every log file; an include-only site logs under /var/log/nginx,
    which the user running ``--check`` may not be able to write.
    """
    for kind, path in log_files(options).items():
        site = site.replace(path, str(run_dir / f"{kind}.log"))
    return site


def slug(name: str) -> str:
    """A configuration identifier made from a certificate name (``api.example.com`` -> ``api_example_com``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "mtls"


def _pcre(value: str) -> str:
    """Escape a literal for a PCRE regex inside a double-quoted server string."""
    return re.sub(r"([\\.^$|?*+()\[\]{}\"])", r"\\\1", value)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )
    env.filters["pcre"] = _pcre
    env.filters.update(quoting.FILTERS)     # nginx_q, apache_q, haproxy_q: every value written
    return env
