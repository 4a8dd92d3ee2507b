"""The CA knows everything it signed: real `issue --from` batches killed part-way.

After `kill -9` at any point, every cert.pem and key.pem left under the output directory
(hidden staging directories included) belongs to a certificate in the inventory, or is gone
once the next command has run on the home. SIGTERM and SIGINT stop a batch cleanly.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import mtlskit
from mtlskit.issue.journal import JOURNAL_DIR, Journal
from mtlskit.store.inventory import Inventory
from tests.support_process import wait_group_gone

SRC = str(Path(mtlskit.__file__).resolve().parents[1])
BATCH = 1500
DEADLINE = 60.0


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    from mtlskit.cli.app import main

    home = tmp_path_factory.mktemp("batch") / "home"
    assert main(["--home", str(home), "init", "--name", "Kill CA", "--no-passphrase"]) == 0
    return home


def _start_batch(home: Path, tmp_path: Path, prefix: str, count: int) -> tuple[subprocess.Popen, Path]:
    names = tmp_path / f"{prefix}.txt"
    names.write_text("".join(f"{prefix}-{i:05d}\n" for i in range(count)))
    out = tmp_path / prefix
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = SRC
    process = subprocess.Popen(
        [sys.executable, "-m", "mtlskit", "--home", str(home), "issue", "client", "--from", str(names),
         "--out", str(out), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    return process, out


def _wait_for_entries(process: subprocess.Popen, out: Path, at_least: int) -> None:
    """Until the batch has staged or published `at_least` bundles (the kill point)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(os.listdir(out)) >= at_least:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    assert process.poll() is None, f"the batch ended before the kill point: {process.stderr.read()[-500:]}"


def _inventory(home: Path, cli) -> dict[str, str]:
    """fingerprint -> name, of every certificate the inventory holds (the next command)."""
    result = cli("--home", home, "list", "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    return {row["fingerprint_sha256"].lower().replace(":", ""): row["name"] for row in rows}


def _bundles_on_disk(out: Path) -> list[Path]:
    """Every directory under `out`, hidden ones included, holding a cert.pem or a key.pem."""
    found = []
    for directory, _dirs, files in os.walk(out):
        if "cert.pem" in files or "key.pem" in files:
            found.append(Path(directory))
    return found


def _assert_known_or_gone(home: Path, out: Path, prefix: str, cli) -> int:
    known = _inventory(home, cli)
    bundles = _bundles_on_disk(out)
    for bundle in bundles:
        assert (bundle / "cert.pem").exists(), f"{bundle}: a key without its certificate"
        der = x509.load_pem_x509_certificate((bundle / "cert.pem").read_bytes()).public_bytes(Encoding.DER)
        assert hashlib.sha256(der).hexdigest() in known, f"{bundle}: a certificate the CA does not know"
        assert not bundle.name.endswith(".partial"), f"{bundle}: recorded but left staged"
    recorded = {name for name in known.values() if name.startswith(prefix + "-")}
    assert recorded == {b.name for b in bundles}  # and everything recorded is in place
    assert not os.listdir(home / JOURNAL_DIR)
    return len(bundles)


@pytest.mark.parametrize("run", range(3))
def test_kill_9_at_a_random_point_leaves_only_known_certificates(home, tmp_path, cli, run):
    rng = random.Random(run)
    prefix = f"k{run}"
    process, out = _start_batch(home, tmp_path, prefix, BATCH)
    _wait_for_entries(process, out, rng.choice([1, rng.randrange(2, BATCH // 2)]))
    if run % 2:
        os.killpg(process.pid, signal.SIGKILL)  # the whole group, as a cgroup kill does
    else:
        os.kill(process.pid, signal.SIGKILL)    # the parent alone, as the OOM killer does
    process.wait()
    wait_group_gone(process.pid, DEADLINE)
    kept = _assert_known_or_gone(home, out, prefix, cli)
    assert kept < BATCH


@pytest.mark.slow
@pytest.mark.parametrize("run", range(6))
def test_kill_9_during_a_20000_batch(home, tmp_path, cli, run, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("20,000-line batches, minutes: run with -m slow")
    rng = random.Random(100 + run)
    prefix = f"big{run}"
    process, out = _start_batch(home, tmp_path, prefix, 20_000)
    _wait_for_entries(process, out, rng.randrange(1, 15_000))
    os.killpg(process.pid, signal.SIGKILL) if run % 2 else os.kill(process.pid, signal.SIGKILL)
    process.wait()
    wait_group_gone(process.pid, DEADLINE)
    _assert_known_or_gone(home, out, prefix, cli)


@pytest.mark.parametrize("signum, whole_group", [(signal.SIGTERM, True), (signal.SIGTERM, False),
                                                 (signal.SIGINT, True)])
def test_a_signal_stops_the_batch_cleanly_and_says_how_many(home, tmp_path, cli, signum, whole_group):
    prefix = f"s{int(signum)}{'g' if whole_group else 'p'}"
    process, out = _start_batch(home, tmp_path, prefix, BATCH)
    _wait_for_entries(process, out, BATCH // 5)
    (os.killpg if whole_group else os.kill)(process.pid, signum)
    _stdout, stderr = process.communicate(timeout=DEADLINE)
    wait_group_gone(process.pid, DEADLINE)
    assert process.returncode == 128 + signum, stderr
    issued = _assert_known_or_gone(home, out, prefix, cli)
    assert 0 < issued < BATCH
    message = stderr.decode().strip().splitlines()
    assert len(message) == 1 and message[0].startswith("error: interrupted by " + signal.Signals(signum).name)
    assert f"{issued} of {BATCH} certificates issued and recorded" in message[0]
    assert f"the other {BATCH - issued} were not issued" in message[0]


def _journal_of_a_dead_batch(home: Path, entries: list[tuple[Path, Path]]) -> Journal:
    journal = Journal(home, [(str(s), str(f)) for s, f in entries])
    os.close(journal.fd)  # the lock goes with the batch: killed
    return journal


def test_the_sweep_publishes_what_was_recorded_and_destroys_the_rest(fresh_home, tmp_path, cli):
    out = tmp_path / "out"
    assert cli("--home", fresh_home, "issue", "client", "recorded", "--out", out / "recorded").code == 0
    os.rename(out / "recorded", out / ".recorded.partial")  # killed between the commit and the rename
    other = tmp_path / "other-home"  # its certificates are not in fresh_home's inventory
    assert cli("--home", other, "init", "--name", "Other", "--no-passphrase").code == 0
    stranger = tmp_path / "stranger"
    assert cli("--home", other, "issue", "client", "stranger", "--out", stranger).code == 0
    os.mkdir(out / ".unrecorded.partial")  # signed, never recorded
    for file_name in ("key.pem", "cert.pem"):
        (out / ".unrecorded.partial" / file_name).write_bytes((stranger / file_name).read_bytes())
    os.mkdir(out / ".keyonly.partial")  # killed before cert.pem was written
    (out / ".keyonly.partial" / "key.pem").write_bytes((stranger / "key.pem").read_bytes())
    (tmp_path / "bystander").mkdir()  # named in a journal, but not a staging directory
    _journal_of_a_dead_batch(fresh_home, [
        (out / f".{n}.partial", out / n) for n in ("recorded", "unrecorded", "keyonly", "never-staged")]
        + [(tmp_path / "bystander", tmp_path / "x")])

    result = cli("--home", fresh_home, "list", "--json")

    assert result.code == 0 and "1 recorded one(s) moved into place, 2 unrecorded one(s) destroyed" in result.err
    assert sorted(os.listdir(out)) == ["recorded"]
    assert (tmp_path / "bystander").is_dir()
    assert not os.listdir(fresh_home / JOURNAL_DIR)
    listed = json.loads(result.out)
    assert [r["name"] for r in listed if r["profile"] == "client"] == ["recorded"]
    events = [e for e in Inventory.open(f"sqlite:///{fresh_home / 'inventory.db'}").events() if e["action"] == "batch-swept"]
    assert len(events) == 1 and (events[0]["detail"]["published"], events[0]["detail"]["destroyed"]) == (1, 2)


def test_the_sweep_leaves_a_running_batch_alone(fresh_home, tmp_path, cli):
    staged = tmp_path / ".running.partial"
    staged.mkdir()
    (staged / "key.pem").write_text("in the making")
    journal = Journal(fresh_home, [(str(staged), str(tmp_path / "running"))])
    try:
        assert cli("--home", fresh_home, "list").code == 0
        assert (staged / "key.pem").exists() and journal.path.exists()
    finally:
        journal.close()
