"""Benchmark: CRLs with 100,000 and 1,000,000 revoked certificates.

For each size N, in a fresh CA home:
  1. N revoked certificates are inserted into the inventory in bulk (SQL, as an import
     would), plus a few real clients issued with `mtlskit issue`;
  2. `mtlskit crl` runs as a child process twice: the first run encodes every entry
     (cold cache), the second is the steady state (entries already encoded);
     wall time, the child's peak RSS (wait4) and the DER size are printed;
  3. one more revocation: `mtlskit revoke NAME` as a child process (end to end, Python
     start-up included), `POST /api/v1/revocations` to a running `mtlskit serve --api`
     timed by curl (bench/bench_revoke_api.py), and the revoke() workflow in-process;
  4. `openssl ca -gencrl` on an index.txt with the same N revoked entries, signed by the
     same CA key, in the same run; the ratio is printed.
The CRLs are checked: cryptography loads them and verifies the signature, and
`openssl crl -verify` accepts them.

Usage: python bench/bench_crl.py [--sizes 100000,1000000] [--workdir DIR] [--crl-only]
(--crl-only: steps 1, 2 and 4, without the revocations of step 3.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from support import mtlskit_env  # noqa: E402 (bench/ is on the path from here)

API_RUNS = 7  # measured revocations through `serve --api` (after one first request)

REASONS = ["unspecified", "key-compromise", "superseded", "cessation-of-operation",
           "affiliation-changed", "ca-compromise"]
OPENSSL_REASONS = {"unspecified": "unspecified", "key-compromise": "keyCompromise",
                   "superseded": "superseded", "cessation-of-operation": "cessationOfOperation",
                   "affiliation-changed": "affiliationChanged",
                   "ca-compromise": "CACompromise"}


# Runs one command and reports its wall time and peak RSS. It is a separate small
# process because Linux carries a parent's RSS high-water mark into a forked child
# (this benchmark holds a million rows in memory while it sets up).
_MEASURE = r"""
import json, os, subprocess, sys, time
out, err, cwd, *command = sys.argv[1:]
with open(out, "wb") as o, open(err, "wb") as e:
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=o, stderr=e, cwd=cwd or None)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "maxrss": usage.ru_maxrss * 1024, "rc": os.waitstatus_to_exitcode(status)}))
"""


def run_measured(args: list[str], cwd: Path | None = None) -> tuple[float, int, int, bytes, bytes]:
    """(wall seconds, peak RSS bytes, exit code, stdout, stderr) of one child process."""
    import json

    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        report = subprocess.run([sys.executable, "-c", _MEASURE, str(out), str(err), str(cwd or ""), *args],
                                capture_output=True, text=True, env=mtlskit_env(), check=True)
        result = json.loads(report.stdout)
        return result["wall"], result["maxrss"], result["rc"], out.read_bytes(), err.read_bytes()


def mtlskit(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mtlskit", "--home", str(home), *args]


def check(code: int, err: bytes, what: str) -> None:
    if code != 0:
        raise SystemExit(f"{what} failed ({code}): {err.decode(errors='replace')}")


def bulk_revoked(home: Path, count: int, now: dt.datetime) -> list[tuple]:
    """Insert ``count`` revoked certificates of the intermediate CA with plain SQL.

    Returns (serial, revoked_at, reason) of each, to write openssl's index.txt.
    """
    import sqlite3

    db = sqlite3.connect(home / "inventory.db")
    rng = random.Random(5280)
    rows, revoked = [], []
    not_before = now - dt.timedelta(days=200)
    not_after = now + dt.timedelta(days=165)
    for i in range(count):
        serial = rng.getrandbits(159) | (1 << 158)
        revoked_at = (now - dt.timedelta(seconds=rng.randrange(1, 180 * 86400))).replace(microsecond=0)
        reason = REASONS[i % len(REASONS)]
        revoked.append((serial, revoked_at, reason))
        rows.append(("intermediate", format(serial, "x"), f"bulk-{i}", f"CN=bulk-{i}", "[]", "client",
                     "ec-p256", not_before.isoformat(" "), not_after.isoformat(" "), "revoked",
                     revoked_at.isoformat(" "), reason, secrets.token_hex(32),
                     "(bench row: certificate not kept)", now.isoformat(" ")))
    db.executemany(
        "INSERT INTO certificates (issuer, serial, name, subject, sans, profile, key_type, not_before,"
        " not_after, status, revoked_at, revocation_reason, fingerprint_sha256, pem, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()
    return revoked


def openssl_ca_dir(home: Path, work: Path, revoked: list[tuple], extra_serial: int, now: dt.datetime) -> Path:
    """A minimal `openssl ca` directory over the same CA key with the same revoked set."""
    ca = work / "openssl-ca"
    ca.mkdir()
    shutil.copy(home / "ca" / "intermediate.pem", ca / "ca.pem")
    shutil.copy(home / "ca" / "intermediate.key.pem", ca / "ca.key")
    expiry = (now + dt.timedelta(days=165)).strftime("%y%m%d%H%M%SZ")
    with open(ca / "index.txt", "w") as index:
        for serial, revoked_at, reason in revoked:
            when = revoked_at.strftime("%y%m%d%H%M%SZ")
            if reason != "unspecified":
                when += "," + OPENSSL_REASONS[reason]
            index.write(f"R\t{expiry}\t{when}\t{serial:X}\tunknown\t/CN=x\n")
        index.write(f"V\t{expiry}\t\t{extra_serial:X}\tunknown\t/CN=carol\n")
    (ca / "index.txt.attr").write_text("unique_subject = no\n")
    (ca / "crlnumber").write_text("01\n")
    (ca / "ca.cnf").write_text(
        "[ ca ]\ndefault_ca = CA_default\n"
        "[ CA_default ]\ndir = .\ndatabase = $dir/index.txt\ncrlnumber = $dir/crlnumber\n"
        "certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\ndefault_md = sha256\n"
        "default_crl_days = 7\ncrl_extensions = crl_ext\nnew_certs_dir = $dir\n"
        "serial = $dir/serial\npolicy = policy_any\n"
        "[ policy_any ]\ncommonName = supplied\n"
        "[ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n")
    return ca


def verify_crl(home: Path, der_path: Path, expected: int) -> str:
    from cryptography import x509

    crl = x509.load_der_x509_crl(der_path.read_bytes())
    ca = x509.load_pem_x509_certificate((home / "ca" / "intermediate.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key()), "signature does not verify"
    assert len(crl) == expected, (len(crl), expected)
    result = subprocess.run(["openssl", "crl", "-in", str(der_path), "-inform", "DER", "-noout",
                             "-CAfile", str(home / "ca" / "intermediate.pem"), "-verify"],
                            capture_output=True, text=True)
    assert "verify OK" in result.stdout + result.stderr, result.stderr
    return "cryptography + openssl crl -verify OK"


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def bench_size(count: int, work: Path, crl_only: bool = False) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    now = dt.datetime.now(dt.timezone.utc)
    _, _, code, _, err = run_measured(mtlskit(home, "init", "--no-passphrase"))
    check(code, err, "init")
    api_names = [f"api{i}" for i in range(API_RUNS + 1)]
    clients = ["carol"] + [f"cli{i}" for i in range(3)] + [f"wf{i}" for i in range(5)] + api_names
    _, _, code, _, err = run_measured(mtlskit(home, "issue", "client", *clients, "--out", str(work / "out")))
    check(code, err, "issue")

    print(f"\n== {count:,} revoked certificates ==")
    start = time.perf_counter()
    revoked = bulk_revoked(home, count, now)
    print(f"setup: bulk insert of {count:,} revoked rows: {time.perf_counter() - start:.1f} s")
    crl_file = work / "intermediate.crl"

    cold = run_measured(mtlskit(home, "crl", "--format", "der", "--out", str(crl_file)))
    check(cold[2], cold[4], "crl (cold)")
    print(f"mtlskit crl, first run (encodes every entry):  {cold[0]:6.2f} s  peak RSS {mib(cold[1])}")
    warm = run_measured(mtlskit(home, "crl", "--format", "der", "--out", str(crl_file)))
    check(warm[2], warm[4], "crl")
    size = crl_file.stat().st_size
    print(f"mtlskit crl (steady state):                    {warm[0]:6.2f} s  peak RSS {mib(warm[1])}"
          f"  DER {size / 1e6:.1f} MB")
    print(f"check: {verify_crl(home, crl_file, count)}")
    one, api, in_process = (None, {"median": None}, None) if crl_only else _bench_revocations(home, work, count, api_names)
    ossl = _bench_openssl(home, work, revoked, now, warm, one)
    return {"count": count, "crl_s": warm[0], "crl_rss": warm[1], "der": size, "cold_s": cold[0],
            "cold_rss": cold[1], "revoke_cli_s": one[0] if one else None, "revoke_api_s": api["median"],
            "revoke_workflow_s": in_process, "openssl_s": ossl[0]}


def _bench_revocations(home: Path, work: Path, count: int, api_names: list[str]):
    """Step 3: one more revocation by the CLI, the HTTP API and the workflow in-process."""
    cli_runs = []
    for i in range(3):
        one = run_measured(mtlskit(home, "revoke", f"cli{i}", "--reason", "key-compromise"))
        check(one[2], one[4], "revoke")
        cli_runs.append(one)
    one = sorted(cli_runs)[1]  # the median of three
    # What `revoke` imports (the command modules import their workflows only when run).
    startup = [sys.executable, "-c", "import mtlskit.revoke.revoker, mtlskit.service; "
               "from mtlskit.cli.app import build_app; build_app()"]
    baseline = sorted(run_measured(startup) for _ in range(3))[1]
    print(f"mtlskit revoke NAME (child process, end to end, median of 3): {one[0] * 1000:6.0f} ms"
          f"  peak RSS {mib(one[1])}  (Python start-up + imports alone: ~{baseline[0] * 1000:.0f} ms)")
    verify_crl(home, home / "crl" / "intermediate.crl", count + 3)

    import bench_revoke_api

    api = bench_revoke_api.measure(home, api_names, work)
    print(f"mtlskit serve --api: {bench_revoke_api.report(api)}")
    verify_crl(home, home / "crl" / "intermediate.crl", count + 3 + len(api_names))

    from mtlskit.clock import SystemClock
    from mtlskit.config import load_settings
    from mtlskit.revoke.revoker import revoke
    from mtlskit.service import Service

    service = Service.open(load_settings(home), SystemClock())
    authority = service.authority(lambda: None)
    times = []
    for i in range(5):
        start = time.perf_counter()
        revoke(service, authority, [f"wf{i}"], "superseded")
        times.append(time.perf_counter() - start)
    in_process = sorted(times)[2]
    print(f"revoke() workflow in-process (resolve, 1 tx, re-sign, write files), median of 5: "
          f"{in_process * 1000:6.0f} ms (min {min(times) * 1000:.0f} ms)")
    verify_crl(home, home / "crl" / "intermediate.crl", count + 8 + len(api_names))
    return one, api, in_process


def _bench_openssl(home: Path, work: Path, revoked: list[tuple], now: dt.datetime, warm, one):
    """Step 4: `openssl ca -gencrl` over the same revoked set and CA key."""
    from cryptography import x509
    carol = x509.load_pem_x509_certificate((work / "out" / "carol" / "cert.pem").read_bytes()).serial_number
    ca_dir = openssl_ca_dir(home, work, revoked, carol, now)
    ossl = run_measured(["openssl", "ca", "-gencrl", "-config", "ca.cnf", "-out", "crl.pem", "-batch"], cwd=ca_dir)
    check(ossl[2], ossl[4], "openssl ca -gencrl")
    ossl_der = subprocess.run(["openssl", "crl", "-in", "crl.pem", "-outform", "DER"], cwd=ca_dir,
                              capture_output=True).stdout
    print(f"openssl ca -gencrl:                            {ossl[0]:6.2f} s  peak RSS {mib(ossl[1])}"
          f"  DER {len(ossl_der) / 1e6:.1f} MB")
    print(f"ratio openssl / mtlskit crl: {ossl[0] / warm[0]:.1f}x time, "
          f"{ossl[1] / warm[1]:.1f}x memory")
    if one is not None:
        print(f"ratio openssl -gencrl / mtlskit revoke (one more revocation, end to end): "
              f"{ossl[0] / one[0]:.1f}x")
    return ossl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the homes here")
    parser.add_argument("--crl-only", action="store_true",
                        help="time the CRLs (cold, steady) and openssl only, not the revocations")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    base = args.workdir or Path(tempfile.mkdtemp(prefix="mtlskit-bench-crl-"))
    try:
        results = [bench_size(n, base / f"n{n}", args.crl_only) for n in sizes]
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    print("\nsummary (targets: 1,000,000-entry CRL < 10 s and < 1 GiB; one revocation at 100,000 < 200 ms)")
    for r in results:
        revocations = "" if r["revoke_cli_s"] is None else (
            f" revoke one: {r['revoke_cli_s'] * 1000:.0f} ms (CLI), {r['revoke_api_s'] * 1000:.0f} ms"
            f" (serve --api, HTTP), {r['revoke_workflow_s'] * 1000:.0f} ms (workflow);")
        print(f"  {r['count']:>9,}: crl {r['crl_s']:.2f} s, {mib(r['crl_rss'])}, DER {r['der'] / 1e6:.1f} MB"
              f" (first run after the bulk import: {r['cold_s']:.2f} s, {mib(r['cold_rss'])});{revocations}"
              f" openssl ca -gencrl {r['openssl_s']:.2f} s")


if __name__ == "__main__":
    main()
