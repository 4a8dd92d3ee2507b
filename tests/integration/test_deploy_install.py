"""Atomic installation with safe modes, and reload commands (local files and processes only)."""

from __future__ import annotations

import stat

import pytest

from mtlskit.deploy.install import KEY_MODE, FileSpec, atomic_write, install
from mtlskit.deploy.reload import haproxy_update_crl, run_reload
from mtlskit.errors import BadInput


def test_install_sets_modes_and_replaces_atomically(tmp_path):
    target = tmp_path / "d"
    install(target, [FileSpec("k.pem", b"old key", KEY_MODE), FileSpec("c.pem", b"old")])
    written = install(target, [FileSpec("k.pem", b"new key", KEY_MODE), FileSpec("c.pem", b"new")])
    assert written == [target / "k.pem", target / "c.pem"]
    assert (target / "k.pem").read_bytes() == b"new key"
    assert stat.S_IMODE((target / "k.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "c.pem").stat().st_mode) == 0o644
    assert sorted(p.name for p in target.iterdir()) == ["c.pem", "k.pem"]   # no temp file left


def test_install_into_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInput, match="is not a directory|cannot create"):
        install(tmp_path / "f", [FileSpec("a", b"b")])
    with pytest.raises(BadInput, match="cannot write"):
        atomic_write(tmp_path / "f" / "a", b"b")


@pytest.mark.parametrize("command,message", [
    ("", "empty reload command"),
    ("nginx -s 'reload", "cannot be parsed"),
    ("/nonexistent/mtlskit-no-such-binary", "command not found"),
    ("false", "'false' exited with 1"),
])
def test_reload_failures_are_reported(tmp_path, command, message):
    result = run_reload(command, tmp_path / "crl.pem", b"")
    assert not result.ok and message in result.message


def test_reload_success(tmp_path):
    marker = tmp_path / "m"
    assert run_reload(f"touch {marker}", tmp_path / "crl.pem", b"").ok and marker.exists()


def test_haproxy_socket_that_is_not_there(tmp_path):
    result = haproxy_update_crl(tmp_path / "admin.sock", tmp_path / "crl.pem", b"x", timeout=2)
    assert not result.ok and "admin socket" in result.message
    assert run_reload(f"socket:{tmp_path / 'admin.sock'}", tmp_path / "crl.pem", b"x").ok is False


def test_check_without_the_server_binary_is_skipped_not_failed(tmp_path, monkeypatch):
    from pathlib import Path

    from mtlskit.deploy.check import run_check
    from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream
    monkeypatch.setenv("PATH", str(tmp_path))          # no nginx on this PATH
    options = DeployOptions(server="nginx", name="x.example", directory=Path(tmp_path),
                            listen=parse_listen("443"), upstream=parse_upstream("127.0.0.1:80"))
    result = run_check(options, 2)
    assert not result.ran and result.output == "nginx is not installed; check skipped"
