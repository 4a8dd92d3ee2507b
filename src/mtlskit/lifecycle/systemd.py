"""The systemd service unit and timer that run `mtlskit agent --once` (pure text).

No secret goes into them: the CA passphrase is handed over as a systemd credential
(``LoadCredential=``, systemd 247+): systemd copies the file into a private directory
only this service can read (``%d``) for the run, and the agent reads it from there with
``--passphrase-file``; it never appears in argv or the environment.
"""

from __future__ import annotations

from pathlib import Path

from mtlskit.errors import BadInput

#: how often the timer runs a pass: hourly keeps 24 h certificates (renewed from hour 16
#: on) several passes away from expiry; the agent's own schedule decides what is due
TIMER_EVERY = "1h"
DEFAULT_PASSPHRASE_FILE = Path("/etc/mtlskit/ca-passphrase")
CREDENTIAL = "ca-passphrase"


def quote_argument(value: str) -> str:
    """One ExecStart= argument, double-quoted (systemd.service(5) "Command lines"):
    backslash and quote escaped, ``%`` (specifiers) and ``$`` (variables) doubled.

    Raises:
        BadInput: a control character, which no unit file line can carry.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise BadInput(f"{value[:60]!r} holds a control character: it cannot go into a systemd unit")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _setting_path(path: Path) -> str:
    """A path as the value of a setting (LoadCredential=, ReadWritePaths=): specifiers escaped."""
    text = str(path)
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise BadInput(f"{text[:60]!r} holds a space or control character: give a simpler path for systemd")
    return text.replace("%", "%%")


def units(script: Path, home: Path, user: str | None, passphrase_file: Path | None,
          remote: tuple[str, Path] | None = None) -> tuple[str, str]:
    """(service unit, timer unit) for the CA home ``home``, or for a host without the CA
    (``remote``: the CA's URL and the certificate directory; no passphrase then).

    Args:
        script: absolute path of the `mtlskit` console script.
        user: who runs it (the owner of ``home`` or of the directory); None leaves User= out.
        passphrase_file: where the operator keeps the passphrase (default
            /etc/mtlskit/ca-passphrase, mode 0600, owned by root).
    """
    if remote is not None:
        args = (str(script), "agent", "--once", "--ca-url", remote[0], "--cert-dir", str(remote[1]))
        secret_lines = ["# No secret: the certificate's own key (0600, in --cert-dir) authenticates the renewal."]
    else:
        args = (str(script), "--home", str(home), "agent", "--once")
        secret_lines = _credential_lines(passphrase_file or DEFAULT_PASSPHRASE_FILE)
    argv = " ".join(quote_argument(a) for a in args)
    if remote is None:
        argv += f" --passphrase-file %d/{CREDENTIAL}"
    service = "\n".join([
        "[Unit]",
        "Description=mtlskit agent: renew certificates, re-sign CRLs, refresh deployments",
        "Documentation=man:mtlskit(1)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        *([f"User={user}"] if user else []),
        *secret_lines,
        f"ExecStart={argv}",
        "# exit status 1: a certificate expires within a day (see the journal for which)",
        "# No ProtectSystem=/NoNewPrivileges=: the agent writes into deployment directories",
        "# (often under /etc) and reloads their servers, which may need sudo in a reload command.",
        "PrivateTmp=yes",
        "UMask=0077",
        "",
    ])
    timer = "\n".join([
        "[Unit]",
        "Description=Run the mtlskit agent every hour",
        "",
        "[Timer]",
        "OnBootSec=5min",
        f"OnUnitActiveSec={TIMER_EVERY}",
        "RandomizedDelaySec=5min",
        "Persistent=true",
        "Unit=mtlskit-agent.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return service, timer


def _credential_lines(secret: Path) -> list[str]:
    return [
        "# The CA passphrase is a systemd credential: systemd reads the file below (keep it",
        "# mode 0600, owned by root) and hands a private copy to this run in %d, the",
        "# credentials directory; it never appears in the command line, the environment or",
        "# the journal. A CA created with --no-passphrase can drop LoadCredential= and",
        "# --passphrase-file. (Where LoadCredentialEncrypted= is available, `systemd-creds",
        "# encrypt` keeps the file encrypted at rest too.)",
        f"LoadCredential={CREDENTIAL}:{_setting_path(secret)}",
    ]
