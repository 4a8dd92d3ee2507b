"""`make run`: a demo CA in a demo home, a server and a client, and how to use them.

Runs through the same CLI entry point users type, so the demo shows the real commands.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from mtlskit.cli.app import main as cli


def _run(*args: str) -> None:
    print(f"$ mtlskit {shlex.join(args)}")
    code = cli(list(args))
    if code:
        raise SystemExit(code)


def main() -> int:
    home = Path(os.environ.get("MTLSKIT_HOME", "demo-home")).resolve()
    out = Path(os.environ.get("MTLSKIT_DEMO_OUT", "demo-out")).resolve()
    os.environ["MTLSKIT_HOME"] = str(home)
    if not (home / "ca" / "root.pem").exists():
        _run("init", "--name", "mtlskit Demo CA", "--no-passphrase")
    for profile, name in (("server", "localhost"), ("client", "demo-client")):
        target = out / name
        if not (target / "cert.pem").exists():
            _run("issue", profile, name, "--out", str(target), *(["--ip", "127.0.0.1"] if profile == "server" else []))
    _run("list")
    server, client = out / "localhost", out / "demo-client"
    print(f"\nCA home:      {home}")
    print(f"server files: {server}/  (fullchain.pem, key.pem)")
    print(f"client files: {client}/  (cert.pem, key.pem, ca.pem)")
    print("\nTry a real mutual-TLS handshake:")
    print(f"  openssl s_server -accept 127.0.0.1:8443 -cert {server}/fullchain.pem -key {server}/key.pem "
          f"-CAfile {server}/ca.pem -Verify 2 -www &")
    print(f"  curl --cacert {client}/ca.pem --cert {client}/cert.pem --key {client}/key.pem "
          "https://localhost:8443/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
