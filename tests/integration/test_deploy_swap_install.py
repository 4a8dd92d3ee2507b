"""A server key and its certificate installed as one unit, and the HAProxy master reload
that serves it (local files and processes only; the real servers: tests/e2e/test_swap_under_load.py)."""

from __future__ import annotations

import os

import pytest

from mtlskit.deploy.install import KEY_MODE, FileSpec, install
from mtlskit.deploy.reload import haproxy_reload_master
from mtlskit.errors import BadInput


def test_a_failed_installation_replaces_no_file(tmp_path):
    """Every file is staged before the first rename: the key is not replaced when the
    certificate cannot be written (a directory stands where it goes)."""
    install(tmp_path, [FileSpec("server.pem.key", b"old key", KEY_MODE)])
    (tmp_path / "server.pem").mkdir()
    with pytest.raises(BadInput, match="cannot write .*server.pem"):
        install(tmp_path, [FileSpec("server.pem.key", b"new key", KEY_MODE), FileSpec("server.pem", b"new")])
    assert (tmp_path / "server.pem.key").read_bytes() == b"old key"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.pem", "server.pem.key"]   # no temp file left


def test_haproxy_without_a_master_says_what_to_do(tmp_path):
    """No master process in the pidfile: one line, the old certificate stays, the fix named."""
    result = haproxy_reload_master(tmp_path / "haproxy.pid")
    assert not result.ok and "\n" not in result.message
    assert "master-worker" in result.message and "old certificate" in result.message
    assert "old configuration" in haproxy_reload_master(None, "configuration").message


def test_haproxy_master_pidfile_of_another_program_is_not_signalled(tmp_path):
    (tmp_path / "haproxy.pid").write_text(f"{os.getpid()}\n")      # this Python, not haproxy
    assert not haproxy_reload_master(tmp_path / "haproxy.pid").ok
