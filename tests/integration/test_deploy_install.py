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
    not_running = run_reload(f"socket:{tmp_path / 'admin.sock'}", tmp_path / "crl.pem", b"x")
    assert not_running.ok and not not_running.running and "nothing answers on" in not_running.message


def test_signal_reload_of_a_server_that_is_not_running(tmp_path):
    pidfile = tmp_path / "nginx.pid"
    absent = run_reload(f"signal:HUP:nginx:{pidfile}", tmp_path / "crl.pem", b"")
    assert absent.ok and not absent.running and f"no live nginx in {pidfile}" in absent.message
    pidfile.write_text("999999999\n")                       # a PID that does not exist
    assert not run_reload(f"signal:HUP:nginx:{pidfile}", tmp_path / "crl.pem", b"").running


def test_signal_reload_never_signals_another_program_under_a_recycled_pid(tmp_path):
    import subprocess

    bystander = subprocess.Popen(["sleep", "30"])             # HUP would kill it
    try:
        pidfile = tmp_path / "nginx.pid"
        pidfile.write_text(f"{bystander.pid}\n")
        result = run_reload(f"signal:HUP:nginx:{pidfile}", tmp_path / "crl.pem", b"")
        assert result.ok and not result.running
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_signal_reload_sends_the_signal_to_the_live_program(tmp_path):
    import signal
    import subprocess
    import sys

    script = ("import signal, sys, time; signal.signal(signal.SIGHUP, lambda *_: sys.exit(7)); "
              "print('ready', flush=True); time.sleep(30)")
    program = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert program.stdout.readline().strip() == "ready"
        name = open(f"/proc/{program.pid}/comm").read().strip()
        pidfile = tmp_path / "server.pid"
        pidfile.write_text(str(program.pid))
        result = run_reload(f"signal:HUP:{name}:{pidfile}", tmp_path / "crl.pem", b"")
        assert result.ok and result.running and f"sent SIGHUP to {name} (pid {program.pid}" in result.message
        assert program.wait(10) == 7
    finally:
        if program.poll() is None:
            program.send_signal(signal.SIGKILL)
            program.wait()


def test_check_without_the_server_binary_is_skipped_not_failed(tmp_path, monkeypatch):
    from pathlib import Path

    from mtlskit.deploy.check import run_check
    from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream
    monkeypatch.setenv("PATH", str(tmp_path))          # no nginx on this PATH
    options = DeployOptions(server="nginx", name="x.example", directory=Path(tmp_path),
                            listen=parse_listen("443"), upstream=parse_upstream("127.0.0.1:80"))
    result = run_check(options, 2)
    assert not result.ran and result.output == "nginx is not installed; check skipped"
