"""A `renew --all` of a fleet killed part-way: after the next command, every directory holds
one consistent set (key, cert, chain of one certificate), that certificate is the name's
current one in the inventory, a renewed directory keeps the replaced set as *.prev, and no
staging directory or journal is left. Nothing is ever half-published."""

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
from cryptography.hazmat.primitives import serialization

import mtlskit
from mtlskit.issue.journal import JOURNAL_DIR
from tests.support_process import wait_group_gone

SRC = str(Path(mtlskit.__file__).resolve().parents[1])
FLEET = 2200          # more than one chunk of records (renew_files.CHUNK_SIZE)

DEADLINE = 90.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Path, Path]:
    from mtlskit.cli.app import main

    base = tmp_path_factory.mktemp("renew-kill")
    home = base / "home"
    assert main(["--home", str(home), "init", "--name", "Kill CA", "--no-passphrase"]) == 0
    names = base / "names.txt"
    names.write_text("".join(f"r-{i:05d}\n" for i in range(FLEET)))
    out = base / "fleet"
    assert main(["--home", str(home), "issue", "client", "--from", str(names), "--out", str(out), "--json"]) == 0
    return home, out


def _start(home: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = SRC
    return subprocess.Popen([sys.executable, "-m", "mtlskit", "--home", str(home), "renew", "--all", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_staged(process: subprocess.Popen, out: Path, at_least: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and process.poll() is None:
        if sum(1 for name in os.listdir(out) if name.endswith(".partial")) >= at_least:
            return
        time.sleep(0.002)
    assert process.poll() is None, f"the renewal ended before the kill point: {process.stderr.read()[-500:]}"


def _fingerprint(path: Path) -> str:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _check_consistent(home: Path, out: Path, cli) -> int:
    listed = cli("--home", home, "list", "--json")   # the next command: it sweeps
    assert listed.code == 0, listed.err
    current = {r["name"]: r["fingerprint_sha256"].replace(":", "").lower()
               for r in json.loads(listed.out) if r["superseded_by"] is None and r["name"].startswith("r-")}
    superseded = {r["fingerprint_sha256"].replace(":", "").lower()
                  for r in json.loads(listed.out) if r["superseded_by"] is not None}
    assert len(current) == FLEET                     # one current certificate per name
    assert not [n for n in os.listdir(out) if n.startswith(".")], "a staging directory was left"
    assert not os.listdir(home / JOURNAL_DIR)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    renewed = 0
    for name, fingerprint in current.items():
        directory = out / name
        assert _fingerprint(directory / "cert.pem") == fingerprint, f"{name}: not its current certificate"
        key = serialization.load_pem_private_key((directory / "key.pem").read_bytes(), None)
        certificate = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
        assert key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki), name
        assert (directory / "fullchain.pem").read_bytes().startswith((directory / "cert.pem").read_bytes())
        if (directory / "cert.pem.prev").exists():
            renewed += 1
            assert _fingerprint(directory / "cert.pem.prev") in superseded
    return renewed


@pytest.mark.parametrize("run", range(2))
def test_kill_9_during_a_batch_renewal_leaves_every_directory_consistent(fleet, cli, run):
    home, out = fleet
    rng = random.Random(run)
    process = _start(home)
    _wait_for_staged(process, out, rng.randrange(1, 900))
    (os.killpg if run % 2 else os.kill)(process.pid, signal.SIGKILL)
    process.wait()
    wait_group_gone(process.pid, DEADLINE)
    _check_consistent(home, out, cli)


def test_sigterm_stops_a_renewal_cleanly(fleet, cli):
    home, out = fleet
    process = _start(home)
    _wait_for_staged(process, out, 50)
    os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in err.decode()
    _check_consistent(home, out, cli)


@pytest.mark.parametrize("died", ["before the swap", "after the swap"])
def test_the_sweep_finishes_a_recorded_renewal(fresh_home, tmp_path, cli, monkeypatch, died):
    """Killed once the successor is recorded: the next command swaps it in (or removes the
    old set the swap left staged); the directory never holds a mixture."""
    from mtlskit.lifecycle import renew_files
    from mtlskit.lifecycle.swap_dirs import exchange
    from tests.support_crl import no_passphrase, open_service

    out = tmp_path / "one"
    assert cli("--home", fresh_home, "issue", "client", "one", "--out", out).code == 0
    old_cert = (out / "cert.pem").read_bytes()

    class DeadJournal(renew_files.Journal):
        def close(self) -> None:          # the process died: the lock goes, the journal stays
            os.close(self.fd)

    def killed(job) -> None:
        if died == "after the swap":
            exchange(job.staged, job.final)
        raise KeyboardInterrupt

    monkeypatch.setattr(renew_files, "Journal", DeadJournal)
    monkeypatch.setattr(renew_files, "_publish", killed)
    monkeypatch.setattr(renew_files, "discard_staged", lambda staged: None)   # no clean-up either
    service = open_service(fresh_home)
    with pytest.raises(KeyboardInterrupt):
        renew_files.renew_with_files(service, service.authority(no_passphrase), service.inventory.by_name("one"))
    monkeypatch.undo()
    assert cli("--home", fresh_home, "list").code == 0          # sweeps
    old, new = open_service(fresh_home).inventory.by_name("one")
    assert _fingerprint(out / "cert.pem") == new.fingerprint_sha256
    assert (out / "cert.pem.prev").read_bytes() == old_cert
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not os.listdir(fresh_home / JOURNAL_DIR)
