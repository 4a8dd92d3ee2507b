"""Hostile paths around `mtlskit backup FILE` and `mtlskit restore FILE --home DIR`: a FILE
that exists or is a symbolic link (refused unless --force, which replaces the link and
never writes through it), a FILE that is a directory or a FIFO, a home that is a file or a
link, and an archive that changes between the check and the writing. One `error:` line,
exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import tarfile

import pytest

from mtlskit.cli.app import main
from tests.conftest import on_postgresql
from tests.support_crl import cli, make_home
from tests.support_ocsp import ServeProcess, free_port, mtlskit_cli

pytestmark = [pytest.mark.security,
              pytest.mark.skipif(on_postgresql(), reason=
                                 "SQLite homes (a serve holding the SQLite file)")]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-paths")
    home = make_home(root)
    assert cli(home, "issue", "client", "alice", "--out", str(root / "alice")) == 0
    return home


@pytest.fixture(scope="module")
def archive(home, tmp_path_factory):
    path = tmp_path_factory.mktemp("archive") / "home.tar"
    assert cli(home, "backup", str(path)) == 0
    return path


def test_backup_refuses_an_existing_file_and_a_link_unless_forced(home, tmp_path, capsys):
    existing = tmp_path / "existing.tar"
    existing.write_bytes(b"keep me")
    victim = tmp_path / "victim"
    victim.write_bytes(b"the link's target")
    link = tmp_path / "link.tar"
    link.symlink_to(victim)
    for path in (existing, link):
        capsys.readouterr()
        assert cli(home, "backup", str(path)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "refusing to replace it" in err
    assert existing.read_bytes() == b"keep me" and victim.read_bytes() == b"the link's target"
    assert cli(home, "backup", str(link), "--force") == 0
    assert not link.is_symlink() and tarfile.is_tarfile(link)       # the link replaced, not followed
    assert victim.read_bytes() == b"the link's target"
    assert cli(home, "backup", str(existing), "--force") == 0 and tarfile.is_tarfile(existing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.tar", "link.tar", "victim"]


@pytest.mark.parametrize("kind", ["directory", "fifo", "missing-parent"])
def test_backup_refuses_what_is_not_a_file_even_forced(home, tmp_path, capsys, kind):
    path = tmp_path / "x"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path = tmp_path / "missing" / "x.tar"
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert cli(home, "backup", str(path), "--force") == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("kind", ["file", "symlink-to-dir", "symlink-to-nothing"])
def test_restore_refuses_a_home_that_is_a_file_or_a_link(archive, tmp_path, capsys, kind):
    target = tmp_path / "home"
    (tmp_path / "elsewhere").mkdir()
    if kind == "file":
        target.write_bytes(b"not a directory")
    elif kind == "symlink-to-dir":
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target.symlink_to(tmp_path / "nothing")
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["restore", str(archive), "--home", str(target), "--force"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not list((tmp_path / "elsewhere").iterdir()) and not (tmp_path / "nothing").exists()


def test_an_archive_changed_after_its_check_is_refused_and_nothing_stays(archive, tmp_path, capsys, monkeypatch):
    """The archive is read twice (checked, then written); a change in between (same file,
    same inode) is caught by the second hashing, and the staging directory goes."""
    import mtlskit.backup.restore as restore

    copy = tmp_path / "copy.tar"
    copy.write_bytes(archive.read_bytes())
    with tarfile.open(copy) as tar:
        offset = tar.getmember("inventory.db").offset_data + 100
    real_stage = restore._stage

    def changed_then_staged(handle, staging, manifest, progress):
        with open(copy, "r+b") as same_inode:
            same_inode.seek(offset)
            byte = same_inode.read(1)
            same_inode.seek(offset)
            same_inode.write(bytes([byte[0] ^ 0xFF]))
        return real_stage(handle, staging, manifest, progress)

    monkeypatch.setattr(restore, "_stage", changed_then_staged)
    target = tmp_path / "out" / "home"
    (tmp_path / "out").mkdir()
    capsys.readouterr()
    assert main(["restore", str(copy), "--home", str(target)]) == 2
    assert "inventory.db: its SHA-256 does not match" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_restore_reads_a_fifo_as_no_archive(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    capsys.readouterr()
    assert main(["restore", str(fifo), "--home", str(tmp_path / "h")]) == 2      # at once, not blocked
    assert "not a regular file" in capsys.readouterr().err and not (tmp_path / "h").exists()


@pytest.mark.e2e
def test_restore_refuses_a_home_that_serve_has_open(archive, tmp_path):
    target = tmp_path / "busy"
    assert mtlskit_cli(target, "restore", str(archive)).returncode == 0
    before = {str(p.relative_to(target)): p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    server = ServeProcess(target, free_port())
    try:
        refused = mtlskit_cli(target, "restore", str(archive), "--force")
        still = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{server.url}/healthz"],
                               capture_output=True)
    finally:
        server.stop()
    err = refused.stderr.decode()
    assert refused.returncode == 2 and err.startswith("error: ") and "in use" in err, err
    assert len(err.strip().splitlines()) <= 2            # error: and hint:
    assert still.stdout == b"200"
    assert not list(target.glob("replaced-*"))
    after = {name: (target / name).stat().st_mtime_ns for name in before if (target / name).exists()}
    assert after.keys() == before.keys()
    assert {n: t for n, t in after.items() if not n.startswith("inventory.db")} == \
        {n: t for n, t in before.items() if not n.startswith("inventory.db")}    # serve writes the database
