"""``mtlskit deploy nginx --policy policy.toml``: the files and checks of the ``auth_request`` wiring.

Nginx asks ``mtlskit serve`` (``--authz-url``, default the CA's ``public_url``) at
``/authz`` before every request. The subrequest is trusted only with the deployment's
shared secret: 32 random bytes, written into ``authz-secret.conf`` (mode 0600, included
by the site; nginx's master reads it as it reads the server key) and recorded in the
``deployments`` table as its SHA-256 only. Deploying again keeps the secret; ``serve``
finds the deployment, and its policy (copied to ``policy.toml`` in the deployment
directory), by that hash. See :mod:`mtlskit.api.authz_route` for the fields nginx sends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from pathlib import Path

from mtlskit.deploy import grammar
from mtlskit.deploy.install import KEY_MODE, FileSpec
from mtlskit.errors import BadInput, UsageError
from mtlskit.pki.names import PATH_SHOWN, shown

POLICY_FILE = "policy.toml"
SECRET_FILE = "authz-secret.conf"
SECRET_HEADER = "X-Mtlskit-Authz-Secret"
RULE_HEADER = "X-Client-Authz-Rule"      # in the identity family: stripped from clients (headers.py)
SUBREQUEST_PATH = "/.mtlskit-authz"
_SECRET = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")
_SECRET_LINE = re.compile(r'\A# [^\n]*\nproxy_set_header ' + SECRET_HEADER + r' "([A-Za-z0-9_-]{43})";\n\Z')


def nginx_clear_patterns() -> list[str]:
    """headers-more patterns for every spelling of the subrequest's fields (``X-Mtlskit-*``)."""
    return ["X-Mtlskit-*", "X_Mtlskit-*", "X-Mtlskit_*", "X_Mtlskit_*"]


def check_policy_file(path: str | Path) -> Path:
    """The ``--policy`` file, absolute, read and validated now (before anything is written).

    Raises:
        BadInput: unreadable or invalid (one line naming the rule and key).
    """
    from mtlskit.authz.policy import load_policy

    absolute = Path(path).expanduser().absolute()
    load_policy(absolute)
    return absolute


def check_options(options) -> None:
    """What --policy needs: nginx, HTTP (not tcp://), a URL where `mtlskit serve` answers.

    Raises:
        UsageError: one line saying which.
    """
    if options.policy is None:
        if options.authz_url is not None:
            raise UsageError("--authz-url only makes sense with --policy")
        return
    if options.server != "nginx":
        raise UsageError(f"--policy is for nginx (auth_request); {options.server} has no such subrequest",
                         hint="deploy nginx --policy policy.toml")
    if options.tcp:
        raise UsageError("--policy does not apply to a tcp:// upstream (a TCP proxy sees no paths or methods)")
    if not options.authz_url:
        raise UsageError("--policy needs the URL of `mtlskit serve`, which answers /authz",
                         hint="give --authz-url http://127.0.0.1:8080, or set public_url in mtlskit.toml")
    if options.authz_secret is None:
        raise UsageError("--policy: the deployment has no authz secret (deploy.authz.prepared gives it one)")
    check_values(options)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where nginx sends the subrequest: ``scheme://hostport`` + ``path`` (ending in /authz)."""

    scheme: str
    hostport: str
    host: str
    path: str


def target(options) -> Target:
    from urllib.parse import urlsplit

    parts = urlsplit(options.authz_url)
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname
    hostport = f"[{host}]" if ":" in host else host
    return Target(parts.scheme, f"{hostport}:{parts.port or default_port}", host,
                  (parts.path or "").rstrip("/") + "/authz")


def check_values(options) -> None:
    if options.authz_url is not None:
        grammar.check_url(options.authz_url, "--authz-url")
    if options.authz_secret is not None and not _SECRET.match(options.authz_secret):
        raise UsageError("the authz secret is not 43 base64url characters")


def prepared(options, public_url: str | None):
    """``options`` with the deployment's secret (the one its directory holds, else a new
    one) and, without --authz-url, the CA's public URL (where `mtlskit serve` answers)."""
    if options.policy is None:
        return options
    url = options.authz_url or (public_url.rstrip("/") if public_url else None)
    return dataclasses.replace(options, authz_url=url,
                               authz_secret=_existing_secret(options.directory) or secrets.token_urlsafe(32))


def _existing_secret(directory: Path) -> str | None:
    from mtlskit.fileio import InputRefused, read_input

    try:
        match = _SECRET_LINE.match(read_input(directory / SECRET_FILE, limit=4096).decode("ascii"))
    except (OSError, InputRefused, UnicodeDecodeError):
        return None
    return match.group(1) if match else None


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def files(options) -> list[FileSpec]:
    """The policy (validated again as read now) and the secret include (0600)."""
    if options.policy is None:
        return []
    from mtlskit.authz.policy import MAX_POLICY_BYTES, parse_policy
    from mtlskit.fileio import InputRefused, read_input

    try:
        data = read_input(options.policy, limit=MAX_POLICY_BYTES)
    except (OSError, InputRefused) as exc:
        raise BadInput(f"--policy {shown(str(options.policy), PATH_SHOWN)}: cannot be read ({exc})") from None
    parse_policy(data, str(options.policy))
    secret_conf = (f"# mtlskit: the shared secret of /authz subrequests for {options.name} (keep it 0600)\n"
                   f'proxy_set_header {SECRET_HEADER} "{options.authz_secret}";\n')
    return [FileSpec(POLICY_FILE, data), FileSpec(SECRET_FILE, secret_conf.encode("ascii"), KEY_MODE)]


def recorded(options) -> dict:
    """What the deployment record keeps (never the secret itself)."""
    if options.policy is None:
        return {}
    return {"policy": str(options.directory / POLICY_FILE), "authz_url": options.authz_url,
            "authz_secret_sha256": secret_sha256(options.authz_secret)}


def authz_deployments(inventory) -> list:
    """Every recorded deployment made with --policy, for ``mtlskit serve``'s /authz."""
    from mtlskit.authz.decider import AuthzDeployment
    from mtlskit.deploy.records import list_deployments

    return [AuthzDeployment(record.name, record.options["authz_secret_sha256"], Path(record.options["policy"]))
            for record in list_deployments(inventory)
            if record.options.get("policy") and record.options.get("authz_secret_sha256")]
