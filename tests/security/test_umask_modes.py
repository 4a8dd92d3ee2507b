"""Issue 11, point 6: under umask 000, the directories mtlskit makes were world-writable
(issue --out and its parents, batch output, HOME's parents, HOME/crl, `crl --out`'s
parents). Each is now made with an explicit mode: 0755 for public output, 0700 for HOME
and private directories, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


@pytest.fixture
def umask_000():
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def umask_077():
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _writable_by_others(base: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(base):
        for name in dirs + files:
            path = Path(root) / name
            if not path.is_symlink() and _mode(path) & 0o022:
                found.append(f"{oct(_mode(path))} {path.relative_to(base)}")
    return found


def test_nothing_mtlskit_makes_is_writable_by_others_under_umask_000(tmp_path, cli, umask_000, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "srv" / "ca" / "home"
    assert cli("--home", home, "init", "--name", "U", "--no-passphrase").code == 0
    assert cli("--home", home, "issue", "client", "alice", "--out", "out/nested/alice").code == 0
    assert cli("--home", home, "issue", "client", "b1", "b2", "--out", "batch/dir").code == 0
    assert cli("--home", home, "crl").code == 0
    assert cli("--home", home, "crl", "--out", "crls/deep/x.crl").code == 0
    assert _writable_by_others(tmp_path) == []
    assert _mode(home) == 0o700 and _mode(home / "ca") == 0o700
    for public in ("srv", "srv/ca", "out", "out/nested", "out/nested/alice", "batch", "batch/dir",
                   "batch/dir/b1", "crls/deep"):
        assert _mode(tmp_path / public) == 0o755, public
    assert _mode(home / "crl") == 0o755
    assert _mode(home / "crl" / ".lock") == 0o600
    assert _mode(tmp_path / "out/nested/alice/key.pem") == 0o600


def test_public_directories_are_0755_under_a_strict_umask_too(tmp_path, cli, umask_077, monkeypatch, ca_home):
    monkeypatch.chdir(tmp_path)
    assert cli("--home", ca_home, "issue", "client", "carol", "--out", "o/carol").code == 0
    assert _mode(tmp_path / "o") == 0o755 and _mode(tmp_path / "o/carol") == 0o755


def test_make_dirs_leaves_existing_directories_alone(tmp_path, umask_000):
    from mtlskit.fileio import make_dirs, make_private_dir
    (tmp_path / "mine").mkdir(mode=0o750)
    os.chmod(tmp_path / "mine", 0o750)
    make_dirs(tmp_path / "mine" / "a" / "b")
    assert _mode(tmp_path / "mine") == 0o750
    assert _mode(tmp_path / "mine" / "a") == 0o755 and _mode(tmp_path / "mine" / "a" / "b") == 0o755
    make_private_dir(tmp_path / "p" / "q")
    assert _mode(tmp_path / "p") == 0o755 and _mode(tmp_path / "p" / "q") == 0o700


def test_make_dirs_refuses_a_file_in_the_way(tmp_path):
    from mtlskit.fileio import make_dirs
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        make_dirs(tmp_path / "file" / "sub")
