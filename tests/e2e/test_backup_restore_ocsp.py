"""A backup restored onto a fresh path answers OCSP as the original did: a real `mtlskit
serve` on the restored home, judged by `openssl ocsp` (revoked before the backup:
revoked; issued before it: good). (tests/security/test_backup_hostile_paths.py: a
home a `serve` has open is refused.)"""

from __future__ import annotations

import subprocess

import pytest

from mtlskit.cli.app import main
from tests.conftest import on_postgresql
from tests.support_ocsp import ServeProcess, free_port, mtlskit_cli, openssl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory):
    root = tmp_path_factory.mktemp("backup-ocsp")
    home, out = root / "home", root / "out"
    assert main(["--home", str(home), "init", "--name", "Backup Test CA", "--no-passphrase"]) == 0
    for name in ("alice", "bob"):
        assert main(["--home", str(home), "issue", "client", name, "--out", str(out / name)]) == 0
    assert main(["--home", str(home), "revoke", "bob", "--reason", "key-compromise"]) == 0
    archive = root / "home.tar"
    made = mtlskit_cli(home, "backup", str(archive))      # the real CLI, in its own process
    assert made.returncode == 0, made.stderr.decode()
    return root, home, out, archive


def ocsp(server: ServeProcess, out, name: str) -> subprocess.CompletedProcess:
    return openssl("ocsp", "-issuer", str(out / name / "chain.pem"), "-cert", str(out / name / "cert.pem"),
                   "-CAfile", str(out / name / "ca.pem"), "-url", f"{server.url}/ocsp")


def test_restored_home_answers_revoked_and_good(backed_up, request):
    """On a PostgreSQL run (MTLSKIT_TEST_DATABASE=postgresql) the home's database is
    dumped with pg_dump and restored into another, empty database."""
    root, _home, out, archive = backed_up
    fresh = root / "another" / "machine" / "mtlskit"
    into = ("--database-url", request.getfixturevalue("postgres_server").create_database(with_schema=False)) \
        if on_postgresql() else ()
    restored = mtlskit_cli(fresh, "restore", str(archive), *into)
    assert restored.returncode == 0, restored.stderr.decode()
    server = ServeProcess(fresh, free_port(), "--ocsp-refresh-seconds", "0")
    try:
        bob, alice = ocsp(server, out, "bob"), ocsp(server, out, "alice")
    finally:
        server.stop()
    assert "Response verify OK" in bob.stderr.decode(), bob.stderr.decode()
    assert "cert.pem: revoked" in bob.stdout.decode() and "Reason: keyCompromise" in bob.stdout.decode()
    assert "Response verify OK" in alice.stderr.decode() and "cert.pem: good" in alice.stdout.decode()
