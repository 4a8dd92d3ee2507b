"""Benchmark: batch issuance of EC P-256 client certificates.

mtlskit: `mtlskit issue client --from devices.txt` (key, certificate, inventory row, files),
timed end to end as a process, startup included.
anchor: the guides' openssl loop, per client `openssl genpkey` + `openssl req` +
`openssl x509 -req` (same key type, same files), timed on a sample in the same run.
Prints certificates per second for both and the ratio, and the CPU time the mtlskit
process tree spent in user space and in the kernel: on a noisy machine the split says
whether a slow run was the code or the disk (creating files is kernel time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXT = """[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = URI:https://mtlskit.invalid/client/$ENV::NAME
"""


def mtlskit(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "mtlskit", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def bench_mtlskit(work: Path, count: int, env: dict) -> tuple[float, float, float]:
    """(wall, user CPU, kernel CPU) seconds of one `issue --from` process and its workers."""
    names = work / "devices.txt"
    names.write_text("".join(f"dev-{i:06d}\n" for i in range(count)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    mtlskit("issue", "client", "--from", str(names), "--out", str(work / "fleet"), "--json", env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def bench_openssl(work: Path, home: Path, count: int) -> float:
    ext = work / "ext.cnf"
    ext.write_text(EXT)
    ca_cert, ca_key = home / "ca" / "intermediate.pem", home / "ca" / "intermediate.key.pem"
    start = time.perf_counter()
    for i in range(count):
        out = work / "openssl" / f"dev-{i:06d}"
        out.mkdir(parents=True)
        run = lambda *a, **kw: subprocess.run(["openssl", *a], check=True, capture_output=True, **kw)
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(out / "key.pem"))
        run("req", "-new", "-key", str(out / "key.pem"), "-subj", f"/CN=dev-{i:06d}", "-out", str(out / "req.csr"))
        run("x509", "-req", "-in", str(out / "req.csr"), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "365", "-sha256", "-extfile", str(ext), "-extensions", "client",
            "-out", str(out / "cert.pem"), env={**os.environ, "NAME": f"dev-{i:06d}"})
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="certificates issued by mtlskit")
    parser.add_argument("--openssl-count", type=int, default=200, help="certificates issued by the openssl loop")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to write (default: the system's temporary directory); "
                             "/dev/shm takes the disk out of the figures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        env = {**os.environ, "MTLSKIT_HOME": str(work / "home")}
        env.pop("MTLSKIT_CA_PASSPHRASE", None)
        mtlskit("init", "--no-passphrase", env=env)
        ours, user, kernel = bench_mtlskit(work, args.count, env)
        theirs = bench_openssl(work, work / "home", args.openssl_count)
    ours_rate, theirs_rate = args.count / ours, args.openssl_count / theirs
    result = {"cores": os.cpu_count(), "mtlskit": {"certificates": args.count, "seconds": round(ours, 2),
                                                    "per_second": round(ours_rate),
                                                    "cpu_user_seconds": round(user, 2),
                                                    "cpu_kernel_seconds": round(kernel, 2)},
              "openssl_loop": {"certificates": args.openssl_count, "seconds": round(theirs, 2),
                               "per_second": round(theirs_rate, 1)},
              "ratio": round(ours_rate / theirs_rate, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"issue {args.count} EC P-256 clients, end to end ({os.cpu_count()} cores)")
        print(f"  mtlskit issue --from : {ours:7.2f} s  {ours_rate:8.0f} certificates/s  "
              f"(CPU: {user:.2f} s user, {kernel:.2f} s kernel)")
        print(f"  openssl loop ({args.openssl_count:>5}) : {theirs:7.2f} s  {theirs_rate:8.1f} certificates/s")
        print(f"  ratio                : {result['ratio']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
