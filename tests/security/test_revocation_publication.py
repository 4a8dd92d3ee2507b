"""Issue 10, door 4 ("revocation sticks") from the attacker's side: a revocation whose
CRL could not be published is kept pending and published by the next `revoke`, `crl` or
`serve` start; a failed reload never puts the old CRL back; no child process (reload,
config test) sees a MTLSKIT_* variable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.config import load_settings
from mtlskit.deploy.bundle import load_crls
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.service import Service

SRC = Path(__file__).resolve().parents[2] / "src"


def _revoked_in(path: Path, serial: int) -> bool:
    return any(entry.serial_number == serial for crl in load_crls(path.read_bytes()) for entry in crl)


def _issue(cli, home: Path, tmp_path: Path, name: str) -> int:
    assert cli("--home", home, "issue", "client", name, "--out", tmp_path / name).code == 0
    return x509.load_pem_x509_certificate((tmp_path / name / "cert.pem").read_bytes()).serial_number


def _deploy(cli, home: Path, directory: Path, reload_command: str) -> None:
    result = cli("--home", home, "deploy", "nginx", "--name", "f.example.com", "--dir", directory,
                 "--listen", "127.0.0.1:8443", "--reload", reload_command)
    assert result.code == 0, result.err


def _with_read_only_crl_dir(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `mtlskit ARGS` with HOME/crl/ mounted read-only (a private mount namespace):
    the database commits, the CRL files cannot be written."""
    crl_dir = home / "crl"
    script = (f"mount --bind {crl_dir} {crl_dir} && mount -o remount,bind,ro {crl_dir} && "
              f'exec "$0" -m mtlskit --home {home} "$@"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run(["unshare", "-m", "sh", "-c", script, sys.executable, *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture()
def unpublished(fresh_home, tmp_path, cli):
    """A home where `revoke victim` committed but could not write HOME/crl/."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs mount namespaces (unshare -m)")
    assert cli("--home", fresh_home, "crl").code == 0
    serial = _issue(cli, fresh_home, tmp_path, "victim")
    failed = _with_read_only_crl_dir(fresh_home, "revoke", "victim")
    return fresh_home, serial, failed


def test_an_unpublished_revocation_is_reported_not_silent(unpublished):
    home, serial, failed = unpublished
    assert failed.returncode != 0, failed.stdout
    assert f"revoked {serial:x}" in failed.stdout
    error = failed.stderr.splitlines()[0]
    assert error.startswith("error: ") and str(home / "crl") in error and "pending" in error, failed.stderr
    assert "Traceback" not in failed.stderr
    assert not _revoked_in(home / "crl" / "bundle.pem", serial)


def test_crl_that_cannot_write_home_crl_says_so_and_keeps_it_pending(unpublished, cli):
    home, serial, _ = unpublished
    failed = _with_read_only_crl_dir(home, "crl", "--bundle")
    assert failed.returncode == 5 and "BEGIN X509 CRL" in failed.stdout     # the bundle still comes out
    assert "error: cannot write the CRL files in" in failed.stderr and "pending" in failed.stderr
    assert not _revoked_in(home / "crl" / "bundle.pem", serial)
    assert cli("--home", home, "crl").code == 0
    assert _revoked_in(home / "crl" / "bundle.pem", serial)


def test_revoke_again_publishes_the_pending_revocation(unpublished, cli):
    home, serial, _ = unpublished
    again = cli("--home", home, "revoke", "victim")
    assert again.code == 0, again.err
    assert "already revoked" in again.out and "published" in again.out
    assert _revoked_in(home / "crl" / "bundle.pem", serial)
    assert _revoked_in(home / "crl" / "intermediate.pem", serial)
    refused = cli("--home", home, "revoke", "victim")          # published now: a plain refusal
    assert refused.code == 4 and "already revoked" in refused.err


def test_crl_publishes_the_pending_revocation(unpublished, cli):
    home, serial, _ = unpublished
    assert cli("--home", home, "crl").code == 0
    assert _revoked_in(home / "crl" / "bundle.pem", serial)


def test_the_refresher_publishes_the_pending_revocation(unpublished):
    home, serial, _ = unpublished
    service = Service.open(load_settings(home))
    published = CrlRefresher(service, service.authority(lambda: None)).publish_due()
    assert "intermediate" in published
    assert _revoked_in(home / "crl" / "bundle.pem", serial)


def test_serve_start_publishes_the_pending_revocation(unpublished, cli):
    home, serial, _ = unpublished
    with socket.socket() as busy:          # serve publishes before it listens: a busy port stops it there
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert cli("--home", home, "serve", "--port", busy.getsockname()[1]).code == 2
    assert _revoked_in(home / "crl" / "bundle.pem", serial)
    assert _revoked_in(home / "crl" / "intermediate.pem", serial)


def test_the_deployments_get_the_crl_even_when_home_crl_is_unwritable(fresh_home, tmp_path, cli):
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs mount namespaces (unshare -m)")
    assert cli("--home", fresh_home, "crl").code == 0
    _deploy(cli, fresh_home, tmp_path / "d", "true")
    serial = _issue(cli, fresh_home, tmp_path, "victim")
    _with_read_only_crl_dir(fresh_home, "revoke", "victim")
    assert _revoked_in(tmp_path / "d" / "crl.pem", serial)


def test_a_failed_reload_is_a_warning_and_never_rolls_the_crl_back(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "crl").code == 0
    _deploy(cli, fresh_home, tmp_path / "d", "false")
    serial = _issue(cli, fresh_home, tmp_path, "eve")
    revoked = cli("--home", fresh_home, "revoke", "eve")
    assert revoked.code == 0, revoked.err
    [warning] = [line for line in revoked.err.splitlines() if line.startswith("warning:")]
    assert str(tmp_path / "d") in warning and "'false' exited with 1" in warning
    assert "restored" not in revoked.out + revoked.err
    assert _revoked_in(tmp_path / "d" / "crl.pem", serial)


def test_no_child_process_sees_a_mtlskit_variable(fresh_home, tmp_path, cli, monkeypatch):
    dump = tmp_path / "env.txt"
    script = tmp_path / "dump-env.sh"       # --reload takes plain words: a script does the rest
    script.write_text(f"#!/bin/sh\nenv > {dump}\n")
    script.chmod(0o755)
    assert cli("--home", fresh_home, "crl").code == 0
    _deploy(cli, fresh_home, tmp_path / "d", str(script))
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "correct horse battery staple")
    monkeypatch.setenv("MTLSKIT_API_TOKEN_SECRET", "s3cret")
    _issue(cli, fresh_home, tmp_path, "eve")
    assert cli("--home", fresh_home, "revoke", "eve").code == 0
    environment = dump.read_text()
    assert "PATH=" in environment                                # the dump ran
    assert "MTLSKIT_" not in environment and "correct horse" not in environment


def test_the_config_test_sees_no_mtlskit_variable(monkeypatch):
    from mtlskit.deploy import reload

    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "correct horse battery staple")
    environment = reload.child_environment()
    assert "PATH" in environment and not any(name.startswith("MTLSKIT_") for name in environment)
