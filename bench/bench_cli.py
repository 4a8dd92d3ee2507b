"""Benchmark: one `mtlskit` command per process, against the guides' openssl commands.

Cron jobs and agents run one command at a time, so what counts is the wall time of a whole
process, Python's start-up and imports included. In a CA home with COUNT certificates
(default 100,000: issued with `issue --from`, EXPIRING of them within 30 days, REVOKED
of them revoked), each command below runs RUNS times as a child process, interleaved
with its openssl equivalent over the same CA key and an index.txt of the same size:

  issue client NAME      openssl genpkey (EC P-256) + req -new + x509 -req
  renew NAME             the guides' rotation of one certificate: x509 -enddate, genpkey,
                         req -new, x509 -req   (when this tree has `renew`)
  revoke NAME            openssl ca -revoke + openssl ca -gencrl
  list --expiring 30d    awk over index.txt (and the guides' `openssl x509 -enddate` per
       --json            certificate: one process each, its cost per certificate x COUNT)
  show NAME              grep index.txt + openssl x509 -noout -text
  show serial:HEX        the same
  crl                    openssl ca -gencrl
  list --json (all)      awk over index.txt (fewer runs: it prints every certificate)

The floors are measured in the same run: `python -c pass`, `import cryptography.x509`,
`import typer, cryptography.x509, sqlite3` (what every command that opens the inventory
imports) and, for comparison, the same with `sqlalchemy.orm` (what they imported before
store.sql), the last three with the CLI's garbage-collector settings. mtlskit's modules are byte-compiled first, as an installed package's
are (PYTHONDONTWRITEBYTECODE would otherwise make each run compile them again).

Usage: python bench/bench_cli.py [--count 100000] [--expiring 10000] [--revoked 5000]
                                 [--runs 9] [--workdir DIR] [--src OTHER/src]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from support import mtlskit_env  # noqa: E402 (bench/ is on the path from here)

TARGET_MS = 150
# A CLI process's collector settings (mtlskit.cli.common.short_lived_gc), for the floors:
# without the freeze at exit, the collector walks every imported object once more (~100 ms).
GC = "import atexit, gc; gc.set_threshold(100_000, 20, 100); atexit.register(gc.freeze); "


def child_env(src: Path | None = None) -> dict:
    env = mtlskit_env(src)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


ENV = child_env()  # this tree's mtlskit; --src replaces it for the measured runs only


CPU: dict[str, float] = {"last": 0.0}  # CPU seconds (user + system) of the last run()/runs()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], cwd: Path | None = None, check: bool = True) -> float:
    """Wall seconds of one child process (its output discarded); its CPU seconds (user +
    system: on a loaded machine the wall time mostly measures the wait for a core) go
    to CPU["last"]."""
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    CPU["last"] = _children_cpu() - cpu
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... failed ({result.returncode}): "
                         f"{result.stderr.decode(errors='replace')[-2000:]}")
    return wall


def runs(steps: list[list[str]], cwd: Path | None = None) -> float:
    """Wall seconds of several processes in a row (one guide step after the other)."""
    wall = cpu = 0.0
    for step in steps:
        wall += run(step, cwd)
        cpu += CPU["last"]
    CPU["last"] = cpu
    return wall


def mtlskit(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mtlskit", "--home", str(home), *args]


# --- the inventory -------------------------------------------------------------------

def build_home(work: Path, count: int, expiring: int, revoked: int) -> Path:
    home = work / "home"
    run(mtlskit(home, "init", "--no-passphrase"))
    out = Path(tempfile.mkdtemp(prefix="bench-cli-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        names = work / "names.txt"
        names.write_text("".join(f"c{i}\n" for i in range(count - expiring)))
        soon = work / "expiring.txt"
        soon.write_text("".join(f"e{i}\n" for i in range(expiring)))
        start = time.perf_counter()
        run(mtlskit(home, "issue", "client", "--from", str(names), "--out", str(out / "c")))
        if expiring:
            run(mtlskit(home, "issue", "client", "--from", str(soon), "--days", "20", "--out", str(out / "e")))
        print(f"setup: issued {count:,} certificates ({expiring:,} expiring within 30 days) "
              f"in {time.perf_counter() - start:.1f} s")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if revoked:
        gone = work / "revoked.txt"
        gone.write_text("".join(f"c{i}\n" for i in range(revoked)))
        start = time.perf_counter()
        run(mtlskit(home, "revoke", "--from", str(gone), "--reason", "superseded"))
        print(f"setup: revoked {revoked:,} with one `revoke --from` in {time.perf_counter() - start:.1f} s")
    return home


# --- the openssl side ------------------------------------------------------------------

def _asn1_time(text: str) -> str:
    value = dt.datetime.fromisoformat(text)
    return value.strftime("%y%m%d%H%M%SZ")


def openssl_ca(home: Path, work: Path) -> tuple[Path, dict[str, Path]]:
    """An `openssl ca` directory over the intermediate's key with an index.txt of every
    certificate of the inventory (V or R), and the PEM of some valid ones to revoke."""
    ca = work / "openssl-ca"
    ca.mkdir()
    shutil.copy(home / "ca" / "intermediate.pem", ca / "ca.pem")
    shutil.copy(home / "ca" / "intermediate.key.pem", ca / "ca.key")
    certs = ca / "certs"
    certs.mkdir()
    db = sqlite3.connect(home / "inventory.db")
    keep: dict[str, Path] = {}
    with open(ca / "index.txt", "w") as index:
        for serial, name, not_after, status, revoked_at, pem in db.execute(
                "SELECT serial, name, not_after, status, revoked_at, pem FROM certificates"
                " WHERE issuer = 'intermediate' ORDER BY id"):
            if status == "revoked":
                index.write(f"R\t{_asn1_time(not_after)}\t{_asn1_time(revoked_at)},superseded\t"
                            f"{serial.upper()}\tunknown\t/CN={name}\n")
            else:
                index.write(f"V\t{_asn1_time(not_after)}\t\t{serial.upper()}\tunknown\t/CN={name}\n")
            if name.startswith("c9") and len(keep) < 64 and status != "revoked":
                keep[name] = certs / f"{name}.pem"
                keep[name].write_text(pem)
    db.close()
    (ca / "index.txt.attr").write_text("unique_subject = no\n")
    (ca / "crlnumber").write_text("01\n")
    (ca / "serial").write_text("01\n")
    (ca / "ca.cnf").write_text(
        "[ ca ]\ndefault_ca = CA_default\n"
        "[ CA_default ]\ndir = .\ndatabase = $dir/index.txt\ncrlnumber = $dir/crlnumber\n"
        "certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\ndefault_md = sha256\n"
        "default_crl_days = 7\ncrl_extensions = crl_ext\nnew_certs_dir = $dir/certs\n"
        "serial = $dir/serial\npolicy = policy_any\n"
        "[ policy_any ]\ncommonName = supplied\n"
        "[ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n")
    return ca, keep


def openssl_issue(ca: Path, name: str) -> list[list[str]]:
    key, csr, cert = ca / f"{name}.key", ca / f"{name}.csr", ca / f"{name}.crt"
    return [["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)],
            ["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr)],
            ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca / "ca.pem"), "-CAkey", str(ca / "ca.key"),
             "-CAserial", str(ca / "x509.srl"), "-CAcreateserial", "-days", "365", "-out", str(cert)]]


def openssl_renew(ca: Path, old: Path, name: str) -> list[list[str]]:
    return [["openssl", "x509", "-in", str(old), "-noout", "-enddate"], *openssl_issue(ca, name)]


def openssl_revoke(cert: Path) -> list[list[str]]:
    return [["openssl", "ca", "-config", "ca.cnf", "-revoke", str(cert), "-batch"],
            ["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", "-batch"]]


def awk_expiring(index: Path, days: int) -> list[str]:
    cutoff = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).strftime("%y%m%d%H%M%SZ")
    return ["awk", "-F", "\t", f'$1 == "V" && $2 <= "{cutoff}"', str(index)]


# --- the run ---------------------------------------------------------------------------

def measure(home: Path, ca: Path, keep: dict[str, Path], count: int, expiring: int, revoked: int,
            rounds: int) -> dict:
    """Every case RUNS times, interleaved; returns {case: [seconds, ...]}."""
    py = sys.executable
    has_renew = subprocess.run(mtlskit(home, "renew", "--help"), env=ENV, capture_output=True).returncode == 0
    serial = sqlite3.connect(home / "inventory.db").execute(
        "SELECT serial FROM certificates WHERE name = ?", (f"c{(count - expiring) * 2 // 3}",)).fetchone()[0]
    shown = (count - expiring) // 2  # names c{shown + k}: valid, neither revoked nor renewed
    index = ca / "index.txt"
    to_revoke = iter(sorted(keep.values()))
    times: dict[str, list[float]] = {}

    def add(case: str, seconds: float) -> None:
        times.setdefault(case, []).append(seconds)
        times.setdefault("cpu: " + case, []).append(CPU["last"])

    for k in range(rounds):
        add("python -c pass", run([py, "-c", "pass"]))
        add("import cryptography.x509", run([py, "-c", GC + "import cryptography.x509"]))
        add("import typer, cryptography.x509, sqlite3",
            run([py, "-c", GC + "import typer.main, cryptography.x509, sqlite3"]))
        add("import typer, cryptography.x509, sqlalchemy.orm",
            run([py, "-c", GC + "import typer.main, cryptography.x509, sqlalchemy.orm"]))
        add("mtlskit --help", run(mtlskit(home, "--help")))
        out = ca.parent / "mtlskit-out"
        add("issue client NAME", run(mtlskit(home, "issue", "client", f"bench-{k}", "--out", str(out / f"b{k}"))))
        add("openssl: issue", runs(openssl_issue(ca, f"o{k}")))
        if has_renew:
            add("renew NAME", run(mtlskit(home, "renew", f"bench-{k}")))
            add("openssl: renew", runs(openssl_renew(ca, ca / f"o{k}.crt", f"o{k}-new")))
        add("revoke NAME", run(mtlskit(home, "revoke", f"c{revoked + 1 + k}")))
        add("openssl: revoke", runs(openssl_revoke(next(to_revoke)), cwd=ca))
        add("list --expiring 30d --json", run(mtlskit(home, "list", "--expiring", "30d", "--json")))
        add("openssl: list --expiring", run(awk_expiring(index, 30)))
        add("show NAME", run(mtlskit(home, "show", f"c{shown + k}")))
        add("show serial:HEX", run(mtlskit(home, "show", f"serial:{serial}")))
        add("openssl: show", runs([["grep", "-m1", f"/CN=c{shown + k}$", str(index)],
                                   ["openssl", "x509", "-noout", "-text", "-in", str(keep[min(keep)])]]))
        add("crl", run(mtlskit(home, "crl", "--out", str(ca.parent / "mtlskit.crl"))))
        add("openssl: crl", run(["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", "-batch"], cwd=ca))
        if k < 3:
            add("list --json (all)", run(mtlskit(home, "list", "--json")))
            add("openssl: list (all)", run(["awk", "-F", "\t", '$1 == "V"', str(index)]))
    sample = sorted(keep.values())[:20]
    start = time.perf_counter()
    for cert in sample:
        run(["openssl", "x509", "-in", str(cert), "-noout", "-enddate"])
    times["openssl x509 -enddate, per certificate"] = [(time.perf_counter() - start) / len(sample)]
    return times


ROWS = [  # (mtlskit case, openssl case)
    ("issue client NAME", "openssl: issue"), ("renew NAME", "openssl: renew"),
    ("revoke NAME", "openssl: revoke"), ("list --expiring 30d --json", "openssl: list --expiring"),
    ("show NAME", "openssl: show"), ("show serial:HEX", "openssl: show"), ("crl", "openssl: crl"),
    ("list --json (all)", "openssl: list (all)"),
]


def report(times: dict[str, list[float]], count: int) -> None:
    def ms(case: str) -> float:
        return statistics.median(times[case]) * 1000

    load = os.getloadavg()[0]
    print(f"\nfloors (same run, median wall / CPU; load average now {load:.1f} on {os.cpu_count()} cores):")
    for case in ("python -c pass", "import cryptography.x509", "import typer, cryptography.x509, sqlite3",
                 "import typer, cryptography.x509, sqlalchemy.orm", "mtlskit --help"):
        print(f"  {case:52} {ms(case):7.0f} ms {ms('cpu: ' + case):6.0f} ms CPU")
    print(f"\n{'command (one process, median)':32} {'mtlskit':>9} {'openssl':>9} {'ratio':>7}  target {TARGET_MS} ms"
          "  (ratio: mtlskit / openssl; CPU: user + system)")
    for mine, theirs in ROWS:
        if mine not in times:
            continue
        ratio = ms(mine) / ms(theirs) if ms(theirs) else float("inf")
        flag = "ok" if ms(mine) < TARGET_MS else "over"
        cpu_flag = "ok" if ms("cpu: " + mine) < TARGET_MS else "over"
        print(f"  {mine:30} {ms(mine):7.0f} ms {ms(theirs):6.0f} ms {ratio:6.1f}x  {flag}"
              f"   CPU {ms('cpu: ' + mine):5.0f} ms {ms('cpu: ' + theirs):5.0f} ms  {cpu_flag}")
    per_cert = times["openssl x509 -enddate, per certificate"][0]
    print(f"\nthe guides' expiry check, `openssl x509 -enddate` per certificate: {per_cert * 1000:.1f} ms each,"
          f" {per_cert * count:.0f} s for {count:,} (list --expiring: "
          f"{per_cert * count / (ms('list --expiring 30d --json') / 1000):.0f}x mtlskit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--expiring", type=int, default=10_000)
    parser.add_argument("--revoked", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the home here")
    parser.add_argument("--src", type=Path, default=None,
                        help="measure the mtlskit of this src/ (another version; the home is built with this tree's)")
    args = parser.parse_args()
    for src in {ROOT / "src", args.src or ROOT / "src"}:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True, stdout=subprocess.DEVNULL)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-cli-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        home = build_home(work, args.count, args.expiring, args.revoked)
        ca, keep = openssl_ca(home, work)
        if args.src is not None:
            global ENV
            ENV = child_env(args.src.resolve())
        print(f"inventory: {args.count:,} certificates, {args.revoked:,} revoked; openssl index.txt: "
              f"{sum(1 for _ in open(ca / 'index.txt')):,} lines; {args.runs} runs of each, interleaved")
        report(measure(home, ca, keep, args.count, args.expiring, args.revoked, args.runs), args.count)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
