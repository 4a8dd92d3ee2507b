"""Benchmark: offline chain + CRL verification of client certificates.

mtlskit: `mtlskit.verify.verifier.verify` (the code path of `mtlskit verify`) over N
leaf certificates, chain and CRL checks included, in one process.
anchor: `openssl verify -crl_check_all -CAfile root -untrusted intermediate -CRLfile crl`
over the same N files in one invocation, timed in the same run.
Also times the whole x509-limbo suite through mtlskit's verifier.
Prints certificates per second for both and the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support_verify import make_ca, make_crl, make_leaf  # noqa: E402  (test PKI helpers)

from mtlskit.verify.verifier import VerifyRequest, verify  # noqa: E402

PEM = serialization.Encoding.PEM


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    now = dt.datetime.now(dt.timezone.utc)
    root = make_ca("Bench Root")
    inter = make_ca("Bench Intermediate", root)
    leaves = [make_leaf(f"dev-{i}", inter, not_before=now - dt.timedelta(days=1)) for i in range(args.count)]
    crls = [make_crl(inter, next_=now + dt.timedelta(days=7), last=now - dt.timedelta(days=1)),
            make_crl(root, next_=now + dt.timedelta(days=7), last=now - dt.timedelta(days=1))]

    start = time.perf_counter()
    for leaf in leaves:
        report = verify(VerifyRequest(leaf=leaf.cert, anchors=[root.cert], chain=[inter.cert], crls=crls, at=now))
        assert report.ok, report.findings
    ours = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "root.pem").write_bytes(root.cert.public_bytes(PEM))
        (work / "inter.pem").write_bytes(inter.cert.public_bytes(PEM))
        (work / "crl.pem").write_bytes(b"".join(c.public_bytes(PEM) for c in crls))
        files = []
        for i, leaf in enumerate(leaves):
            path = work / f"leaf{i}.pem"
            path.write_bytes(leaf.cert.public_bytes(PEM))
            files.append(str(path))
        start = time.perf_counter()
        subprocess.run(["openssl", "verify", "-crl_check_all", "-purpose", "sslclient",
                        "-CAfile", str(work / "root.pem"), "-untrusted", str(work / "inter.pem"),
                        "-CRLfile", str(work / "crl.pem"), *files], check=True, stdout=subprocess.DEVNULL)
        anchor = time.perf_counter() - start

    print(f"verify {args.count} client certificates (chain + CRLs)")
    print(f"  mtlskit : {args.count / ours:10.0f} certs/s  ({ours:.2f} s)")
    print(f"  openssl : {args.count / anchor:10.0f} certs/s  ({anchor:.2f} s)")
    print(f"  ratio   : mtlskit is {anchor / ours:.2f}x the speed of openssl verify")

    from tests.unit.test_limbo import LIMBO, run_case
    if LIMBO.exists():
        cases = json.load(gzip.open(LIMBO, "rt"))["testcases"]
        start = time.perf_counter()
        outcomes = [run_case(c)[0] for c in cases]
        took = time.perf_counter() - start
        print(f"x509-limbo: {len(cases)} cases in {took:.2f} s ({len(cases) / took:.0f} cases/s); "
              f"passed {outcomes.count('pass')}, failed {outcomes.count('fail')}, skipped {outcomes.count('skip')}")


if __name__ == "__main__":
    main()
