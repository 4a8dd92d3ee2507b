"""Benchmark: `mtlskit renew --expiring 30d` of a fleet, against the guides' rotation script.

One run: `mtlskit issue client --from` issues COUNT EC P-256 clients with 20-day lifetimes
(timed: the `issue --from` reference), then `mtlskit renew --expiring 30d` renews all of
them (new key, same subject/SANs/lifetime, files swapped in with *.prev kept, inventory
updated), timed end to end as a process. The anchor is the guides' cron script, run by bash
over a sample of the same certificate directories: per certificate `openssl x509 -enddate`
(is it due?), a new key (`openssl genpkey`, the same key type: the guide's RSA-4096 would be
far slower still), `openssl req`, `openssl x509 -req` signed by the same intermediate, the old
files moved to *.bak and the new ones copied in. Prints certificates per second and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import mtlskit_env  # noqa: E402

EXT = """[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

ROTATE = r"""#!/bin/bash
# The guides' rotation script, for the certificate directories given as arguments.
set -e
for dir in "$@"; do
  app=$(basename "$dir")
  EXPIRATION=$(openssl x509 -in "$dir/cert.pem" -noout -enddate | cut -d= -f2)
  DAYS_LEFT=$(( ($(date -d "$EXPIRATION" +%s) - $(date +%s)) / 86400 ))
  if [ "$DAYS_LEFT" -lt 30 ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/$app-new.key" 2>/dev/null
    openssl req -new -key "$WORK/$app-new.key" -out "$WORK/$app-new.csr" -subj "/CN=$app"
    openssl x509 -req -in "$WORK/$app-new.csr" -CA "$CA_CERT" -CAkey "$CA_KEY" -CAcreateserial \
      -days 20 -sha256 -extfile "$EXT" -extensions client -out "$WORK/$app-new.crt" 2>/dev/null
    mv "$dir/key.pem" "$dir/key.pem.bak"
    mv "$dir/cert.pem" "$dir/cert.pem.bak"
    cp "$WORK/$app-new.key" "$dir/key.pem"
    cp "$WORK/$app-new.crt" "$dir/cert.pem"
  fi
done
"""


def mtlskit(*args: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mtlskit", *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def rotate_with_openssl(work: Path, home: Path, directories: list[Path]) -> float:
    script, ext, scratch = work / "rotate-certs.sh", work / "ext.cnf", work / "rotation"
    script.write_text(ROTATE)
    ext.write_text(EXT)
    scratch.mkdir()
    env = {**os.environ, "WORK": str(scratch), "EXT": str(ext),
           "CA_CERT": str(home / "ca" / "intermediate.pem"), "CA_KEY": str(home / "ca" / "intermediate.key.pem")}
    start = time.perf_counter()
    subprocess.run(["bash", str(script), *map(str, directories)], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="certificates issued and renewed by mtlskit")
    parser.add_argument("--openssl-count", type=int, default=200, help="of them rotated by the guides' script")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: the temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-renew-", dir=args.dir) as tmp:
        work = Path(tmp)
        home = work / "home"
        env = {**mtlskit_env(), "MTLSKIT_HOME": str(home)}
        mtlskit("init", "--no-passphrase", env=env)
        names = work / "fleet.txt"
        names.write_text("".join(f"dev-{i:06d}\n" for i in range(args.count)))
        issued = mtlskit("issue", "client", "--from", str(names), "--days", "20", "--out", str(work / "fleet"),
                         "--json", env=env)
        renewed = mtlskit("renew", "--expiring", "30d", "--json", env=env)
        sample = [work / "fleet" / f"dev-{i:06d}" for i in range(min(args.openssl_count, args.count))]
        rotated = rotate_with_openssl(work, home, sample)
    rates = {"renew": args.count / renewed, "issue": args.count / issued, "openssl": len(sample) / rotated}
    result = {"cores": os.cpu_count(), "count": args.count, "openssl_count": len(sample),
              "seconds": {"renew": round(renewed, 2), "issue_from": round(issued, 2), "openssl_script": round(rotated, 2)},
              "per_second": {k: round(v, 1) for k, v in rates.items()},
              "renew_vs_openssl": round(rates["renew"] / rates["openssl"], 1),
              "renew_vs_issue": round(rates["renew"] / rates["issue"], 2)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"renew {args.count} EC P-256 clients expiring within 30 days ({os.cpu_count()} cores)")
    print(f"  mtlskit renew --expiring 30d : {renewed:7.2f} s  {rates['renew']:8.0f} certificates/s")
    print(f"  mtlskit issue --from         : {issued:7.2f} s  {rates['issue']:8.0f} certificates/s")
    print(f"  guides' rotation script ({len(sample):>4}): {rotated:6.2f} s  {rates['openssl']:8.1f} certificates/s")
    print(f"  renew / rotation script      : {result['renew_vs_openssl']}x")
    print(f"  renew / issue --from         : {result['renew_vs_issue']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
