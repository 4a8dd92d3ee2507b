"""Options + paths -> server configuration text (pure; Jinja2 templates in ``templates/``).

``render`` returns the files to write, keyed by their name inside the deployment
directory; nothing here touches the disk. The templates comment every mTLS line.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jinja2

from mtlskit.deploy import headers
from mtlskit.deploy.options import DeployOptions
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

DENY_BODY = "client certificate required"
APACHE_LUA_FILE = "mtls-fingerprint.lua"


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
SYSTEM_PIDFILES = {"nginx": Path("/run/nginx.pid"), "apache": Path("/run/apache2/apache2.pid")}
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
    if options.server == "apache":
        context = _context(options, layout, verify_depth)
        files = {APACHE_LUA_FILE: _env().get_template("apache_fingerprint.lua.j2").render(context), **files}
    if not options.standalone:
        return files
    main = render_main(options, verify_depth, site, run_dir=layout.directory, site_path=layout.site)
    if options.server == "haproxy":
        return {layout.main.name: main}
    return {**files, layout.main.name: main}


def render_site(options: DeployOptions, verify_depth: int) -> str:
    """The include-only part: Nginx ``server {}``, Apache ``<VirtualHost>``, HAProxy frontend/backend."""
    layout = Layout(options.directory, options.server)
    return _env().get_template(f"{options.server}_site.j2").render(_context(options, layout, verify_depth))


def render_main(options: DeployOptions, verify_depth: int, site: str, run_dir: Path,
                site_path: Path) -> str:
    """A complete configuration around ``site`` whose pid, logs, sockets and temp files live in ``run_dir``.

    Used for ``--standalone`` (run_dir = the deployment directory) and to config-test an
    include-only site in a scratch directory.
    """
    layout = Layout(options.directory, options.server)
    context = _context(options, layout, verify_depth)
    return _env().get_template(f"{options.server}_main.j2").render(
        context, site=site, run=str(run_dir), site_path=str(site_path))


def _context(options: DeployOptions, layout: Layout, verify_depth: int) -> dict:
    return {
        "o": options, "layout": layout, "depth": verify_depth, "slug": slug(options.name),
        "ciphers": MOZILLA_INTERMEDIATE_CIPHERS, "tls13": TLS13_CIPHERSUITES,
        "h": headers, "strip": headers.all_spellings(), "deny_body": DENY_BODY,
        "apache_modules": APACHE_MODULES, "lua_file": APACHE_LUA_FILE,
    }


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
    return env
