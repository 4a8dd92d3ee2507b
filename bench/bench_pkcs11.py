"""Benchmark: issuance with the CA keys in a PKCS#11 token (SoftHSM2) against file keys.

Same run, same machine, same key type: two homes, one made with `init --no-passphrase`
(keys in files) and one with `init --pkcs11-module ... --pkcs11-token ... --pkcs11-pin-file`
(keys in a SoftHSM2 token started by the benchmark under a temporary directory). For each:
`mtlskit issue client --from` of N names, timed end to end as a process (forked workers,
each logging in to the token), and the raw signature rate of the issuing CA's Signer in
one process. The two homes take turns for ``--rounds`` rounds and each keeps its best
round (a machine shared with other work slows whichever runs at a bad moment). Prints
certificates per second, signatures per second and the ratios.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.support import REPO, mtlskit_env  # noqa: E402

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "bench-pin-1234"


def softhsm(work: Path) -> tuple[dict, Path, Path]:
    """(environment, module, pin file) of a SoftHSM2 with one token "bench" under ``work``."""
    module = next((Path(path) for path in MODULES if Path(path).is_file()), None)
    if module is None:
        raise SystemExit("SoftHSM2 is not installed (Debian softhsm2: scripts/system-deps.sh)")
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**mtlskit_env(), "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", PIN,
                    "--so-pin", PIN + "-so"], env=env, check=True, capture_output=True)
    pin_file = work / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    return env, module, pin_file


def mtlskit(env: dict, *args) -> None:
    subprocess.run([sys.executable, "-m", "mtlskit", *map(str, args)], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def issue_rate(env: dict, home: Path, names: Path, out: Path, count: int) -> float:
    start = time.perf_counter()
    mtlskit(env, "--home", home, "issue", "client", "--from", names, "--out", out, "--json")
    return count / (time.perf_counter() - start)


SIGN_RATE = """
import sys, time
from pathlib import Path
from mtlskit.config import load_settings
from mtlskit.service import Service
signer = Service.open(load_settings(Path(sys.argv[1]))).authority(lambda: None).issuing
sign, data, count = signer.sign_bytes, b"x" * 600, int(sys.argv[2])
sign(data)
start = time.perf_counter()
for _ in range(count):
    sign(data)
print(count / (time.perf_counter() - start))
"""


def sign_rate(env: dict, home: Path, count: int) -> float:
    """Signatures per second of the issuing CA's Signer over a leaf-sized TBS, one process."""
    result = subprocess.run([sys.executable, "-c", SIGN_RATE, str(home), str(count)], env=env, check=True,
                            capture_output=True, text=True, cwd=REPO)
    return float(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="certificates issued per home")
    parser.add_argument("--signatures", type=int, default=5000, help="raw signatures per home")
    parser.add_argument("--key-types", default="ec-p256,rsa-2048")
    parser.add_argument("--rounds", type=int, default=3, help="turns per home; the best is kept")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to write (default: the system's temporary directory); /dev/shm takes the disk out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-pkcs11-", dir=args.dir) as tmp:
        work = Path(tmp)
        env, module, pin_file = softhsm(work)
        names = work / "names.txt"
        names.write_text("".join(f"dev-{i:06d}\n" for i in range(args.count)))
        for key_type in args.key_types.split(","):
            files, token = work / f"files-{key_type}", work / f"token-{key_type}"
            mtlskit(env, "--home", files, "init", "--no-passphrase", "--key-type", key_type)
            mtlskit(env, "--home", token, "init", "--key-type", key_type, "--pkcs11-module", module,
                    "--pkcs11-token", "bench", "--pkcs11-pin-file", pin_file, "--pkcs11-key-prefix", key_type)
            row = {"key_type": key_type, "certificates": args.count, "cores": os.cpu_count(),
                   "rounds": args.rounds}
            for turn in range(args.rounds):
                for label, home in (("files", files), ("softhsm2", token)):
                    out = work / f"out-{label}-{key_type}-{turn}"
                    best = max(row.get(f"{label}_per_second", 0), round(issue_rate(env, home, names, out, args.count)))
                    row[f"{label}_per_second"] = best
                    best = max(row.get(f"{label}_signatures_per_second", 0), round(sign_rate(env, home, args.signatures)))
                    row[f"{label}_signatures_per_second"] = best
            row["issue_ratio"] = round(row["softhsm2_per_second"] / row["files_per_second"], 2)
            row["sign_ratio"] = round(row["softhsm2_signatures_per_second"] / row["files_signatures_per_second"], 2)
            results.append(row)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"issuance with CA keys in SoftHSM2 (PKCS#11) vs in files ({os.cpu_count()} cores, same run, "
          f"best of {args.rounds})")
    for row in results:
        print(f"  {row['key_type']:<9} issue --from {row['certificates']}: files {row['files_per_second']:6d}/s  "
              f"softhsm2 {row['softhsm2_per_second']:6d}/s  ratio {row['issue_ratio']}x")
        print(f"  {'':<9} Signer.sign_bytes:      files {row['files_signatures_per_second']:6d}/s  "
              f"softhsm2 {row['softhsm2_signatures_per_second']:6d}/s  ratio {row['sign_ratio']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
