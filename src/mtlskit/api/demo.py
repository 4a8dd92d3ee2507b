"""`make run`: the demo CA (see mtlskit.demo) served by `mtlskit serve` on 127.0.0.1.

    MTLSKIT_HOME=demo-home python -m mtlskit.api.demo [PORT]

Creates the demo CA with --public-url pointing at this server when there is none (so
issued certificates carry OCSP and CRL URLs), issues the demo server and client,
prints how to query the responder, then serves until Ctrl-C, with the web UI on: the
banner's "UI" line is the one-time log-in URL (`serve --ui`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mtlskit.cli.app import main as cli

DEFAULT_PORT = 8080


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else int(os.environ.get("MTLSKIT_DEMO_PORT", DEFAULT_PORT))
    home = Path(os.environ.get("MTLSKIT_HOME", "demo-home")).resolve()
    out = Path(os.environ.get("MTLSKIT_DEMO_OUT", "demo-out")).resolve()
    os.environ["MTLSKIT_HOME"] = str(home)
    base = f"http://127.0.0.1:{port}"
    if not (home / "ca" / "root.pem").exists():
        print(f"$ mtlskit init --name 'mtlskit Demo CA' --no-passphrase --public-url {base}")
        code = cli(["init", "--name", "mtlskit Demo CA", "--no-passphrase", "--public-url", base])
        if code:
            return code
    from mtlskit import demo

    code = demo.main()
    if code:
        return code
    client = out / "demo-client"
    print("\nAsk the OCSP responder about the demo client (in another terminal):")
    print(f"  openssl ocsp -issuer {client}/chain.pem -cert {client}/cert.pem -CAfile {client}/ca.pem "
          f"-url {base}/ocsp")
    print(f"  {Path(sys.executable).parent / 'mtlskit'} --home {home} revoke demo-client"
          "   # then ask again: revoked")
    print("The web UI: open the one-time log-in URL of the \"UI\" line below in a browser.\n")
    sys.stdout.flush()
    return cli(["serve", "--host", "127.0.0.1", "--port", str(port), "--ui"])


if __name__ == "__main__":
    sys.exit(main())
