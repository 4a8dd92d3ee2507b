"""`mtlskit backup` and `mtlskit restore` in-process on real SQLite homes: what the archive
holds (manifest, hashes, modes), a restore onto a fresh path, a restore over a home
(--force), the stale -wal/-shm of a replaced database, and the refusals of FILE."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest

from mtlskit import __version__
from mtlskit.cli.app import main
from mtlskit.store.db import SCHEMA_HEAD
from tests.conftest import on_postgresql
from tests.support_crl import cli, make_home

pytestmark = pytest.mark.skipif(on_postgresql(), reason="SQLite homes: the copy is HOME/inventory.db "
                                "(PostgreSQL: tests/integration/test_backup_postgres.py)")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("backup")
    home = make_home(root)
    out = root / "out"
    for name in ("alice", "bob", "carol"):
        assert cli(home, "issue", "client", name, "--out", str(out / name)) == 0
    assert cli(home, "revoke", "bob", "--reason", "key-compromise") == 0
    return home


@pytest.fixture(scope="module")
def archive(home, tmp_path_factory):
    path = tmp_path_factory.mktemp("archive") / "home.tar"
    assert cli(home, "backup", str(path)) == 0
    return path


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def _listing(home: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert cli(home, "list", "--json") == 0
    return sorted(_json(capsys), key=lambda r: r["serial"])


def _tree(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): stat.S_IMODE(p.lstat().st_mode) for p in [path, *path.rglob("*")]}


def test_archive_is_private_and_its_manifest_lists_every_member_with_its_hash(archive):
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
        contents = {name: tar.extractfile(name).read() for name in names[1:]}
    assert names[0] == "manifest.json"
    assert manifest["format"] == "mtlskit-backup" and manifest["format_version"] == 1
    assert manifest["mtlskit_version"] == __version__ and manifest["schema_revision"] == SCHEMA_HEAD
    assert manifest["created_at"].endswith("Z") and manifest["database"] == {"dialect": "sqlite", "member": "inventory.db"}
    assert manifest["inventory"]["certificates"] == 5 and manifest["inventory"]["revoked"] == 1
    assert manifest["keys"] == {"root": "in-archive", "intermediate": "in-archive"}
    listed = {m["name"]: m for m in manifest["members"]}
    assert set(listed) == set(contents) == {"ca/root.pem", "ca/root.key.pem", "ca/intermediate.pem",
                                             "ca/intermediate.key.pem", "inventory.db"}
    for name, data in contents.items():
        assert listed[name]["sha256"] == hashlib.sha256(data).hexdigest() and listed[name]["size"] == len(data)


def test_the_keys_in_the_archive_are_the_home_files_unchanged(home, tmp_path):
    passphrase = tmp_path / "pass"
    passphrase.write_text("correct horse battery\n")
    passphrase.chmod(0o600)
    encrypted = make_home(tmp_path, "--passphrase-file", str(passphrase))
    target = tmp_path / "enc.tar"
    assert cli(encrypted, "backup", str(target)) == 0
    with tarfile.open(target) as tar:
        for name in ("root", "intermediate"):
            data = tar.extractfile(f"ca/{name}.key.pem").read()
            assert data == (encrypted / "ca" / f"{name}.key.pem").read_bytes()
            assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_restore_onto_a_fresh_path_gives_the_same_inventory_and_private_modes(home, archive, tmp_path, capsys):
    target = tmp_path / "fresh" / "machine" / "home"
    assert main(["restore", str(archive), "--home", str(target)]) == 0
    assert _listing(target, capsys) == _listing(home, capsys)
    modes = _tree(target)
    assert modes["."] == 0o700 and modes["ca"] == 0o700
    assert modes["ca/root.key.pem"] == modes["ca/intermediate.key.pem"] == 0o600
    assert modes["ca/root.pem"] == 0o644 and modes["inventory.db"] == 0o600
    assert not [p for p in target.parent.iterdir() if p.name != "home"]   # no staging left behind


def test_json_output_of_both(home, tmp_path, capsys):
    capsys.readouterr()
    assert cli(home, "backup", str(tmp_path / "b.tar"), "--json") == 0
    written = _json(capsys)
    data = (tmp_path / "b.tar").read_bytes()
    assert written["sha256"] == hashlib.sha256(data).hexdigest() and written["size"] == len(data)
    assert written["manifest"]["inventory"]["certificates"] == 5
    assert main(["--home", str(tmp_path / "r"), "restore", str(tmp_path / "b.tar"), "--json",
                 "--expect-sha256", written["sha256"]]) == 0
    restored = _json(capsys)
    assert restored["home"] == str(tmp_path / "r") and restored["replaced_into"] is None
    assert restored["manifest"] == written["manifest"]


def test_restore_over_a_home_needs_force_and_moves_the_old_one_aside(home, archive, tmp_path, capsys):
    target = make_home(tmp_path)           # another CA
    before = (target / "ca" / "root.pem").read_bytes()
    assert main(["restore", str(archive), "--home", str(target)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (target / "ca" / "root.pem").read_bytes() == before
    assert main(["restore", str(archive), "--home", str(target), "--force"]) == 0
    assert (target / "ca" / "root.pem").read_bytes() == (home / "ca" / "root.pem").read_bytes()
    [aside] = target.glob("replaced-*")
    assert (aside / "ca" / "root.pem").read_bytes() == before and (aside / "inventory.db").exists()
    assert stat.S_IMODE(aside.stat().st_mode) == 0o700
    assert _listing(target, capsys) == _listing(home, capsys)


def test_stale_wal_and_shm_of_the_replaced_database_are_not_replayed(home, archive, tmp_path, capsys):
    """A crashed process's -wal holds writes to the old database: replayed into the
    restored file they would corrupt it or bring back what the backup does not hold."""
    target = make_home(tmp_path)
    db = target / "inventory.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO audit_events (at, action, detail) VALUES ('2026-01-01', 'stale', '{}')")
    stale_wal = Path(f"{db}-wal").read_bytes()
    writer.close()   # checkpoints, removes -wal; put the crash's leftovers back
    Path(f"{db}-wal").write_bytes(stale_wal)
    Path(f"{db}-shm").write_bytes(b"\0" * 32768)
    assert main(["restore", str(archive), "--home", str(target), "--force"]) == 0
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT count(*) FROM audit_events WHERE action = 'stale'").fetchone()[0] == 0
    check.close()
    assert _listing(target, capsys) == _listing(home, capsys)


def test_a_home_whose_root_key_is_offline_says_so_in_the_manifest(tmp_path, capsys):
    home = make_home(tmp_path)
    (home / "ca" / "root.key.pem").rename(tmp_path / "root.key.pem")   # kept off the machine
    capsys.readouterr()
    assert cli(home, "backup", str(tmp_path / "b.tar"), "--json") == 0
    captured = capsys.readouterr()
    manifest = json.loads(captured.out)["manifest"]
    assert manifest["keys"] == {"root": "not-in-archive", "intermediate": "in-archive"}
    assert "ca/root.key.pem" not in {m["name"] for m in manifest["members"]}
    assert cli(home, "backup", str(tmp_path / "c.tar")) == 0
    assert "root CA key(s) are NOT in this archive" in capsys.readouterr().err


def test_backup_and_restore_start_without_heavy_imports(home, tmp_path):
    from tests.integration.test_cli_startup import _imports

    runs = _imports(["--home", str(home), "backup", str(tmp_path / "s.tar")],
                    ["restore", str(tmp_path / "s.tar"), "--home", str(tmp_path / "r")])
    assert [r["code"] for r in runs] == [0, 0]
    assert [r["loaded"] for r in runs] == [[], []] and not any(r["sqlalchemy"] for r in runs)


def test_a_home_whose_keys_are_in_a_token_says_the_keys_are_not_in_the_archive(tmp_path, capsys):
    """A PKCS#11 home keeps ca/<name>.pkcs11.json (module, token and key labels, the PIN
    file's path; never the PIN) instead of the key file: the archive carries that
    reference, the manifest says "in-token", and backup warns that the keys are not in it."""
    home = make_home(tmp_path)
    for name in ("root", "intermediate"):
        (home / "ca" / f"{name}.key.pem").unlink()
        reference = home / "ca" / f"{name}.pkcs11.json"
        reference.write_text(json.dumps({"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "ca",
                                         "label": name, "pin_file": "/etc/mtlskit/pin"}))
        reference.chmod(0o600)
    capsys.readouterr()
    assert cli(home, "backup", str(tmp_path / "t.tar")) == 0
    err = capsys.readouterr().err
    assert "root, intermediate CA key(s) are in a PKCS#11 token, NOT in this archive" in err
    with tarfile.open(tmp_path / "t.tar") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        names = set(tar.getnames())
    assert manifest["keys"] == {"root": "in-token", "intermediate": "in-token"}
    assert {"ca/root.pkcs11.json", "ca/intermediate.pkcs11.json"} <= names
    assert not any(name.endswith(".key.pem") for name in names)
    assert main(["restore", str(tmp_path / "t.tar"), "--home", str(tmp_path / "r")]) == 0
    restored = tmp_path / "r" / "ca" / "root.pkcs11.json"
    assert restored.read_bytes() == (home / "ca" / "root.pkcs11.json").read_bytes()
    assert stat.S_IMODE(restored.stat().st_mode) == 0o600


def test_an_sqlite_home_with_its_own_database_path_restores_to_the_new_home(tmp_path, capsys):
    """database_url in mtlskit.toml names a file outside the home: the copy is restored to
    the new HOME/inventory.db, and the restored mtlskit.toml no longer points away from it."""
    elsewhere = tmp_path / "data" / "ca.db"
    elsewhere.parent.mkdir()
    home = tmp_path / "home"
    assert main(["--database-url", f"sqlite:///{elsewhere}", "--home", str(home), "init", "--no-passphrase"]) == 0
    assert "database_url" in (home / "mtlskit.toml").read_text()
    assert cli(home, "issue", "client", "dora", "--out", str(tmp_path / "dora")) == 0
    assert cli(home, "backup", str(tmp_path / "b.tar")) == 0
    restored = tmp_path / "restored"
    assert main(["restore", str(tmp_path / "b.tar"), "--home", str(restored)]) == 0
    assert "database_url" not in (restored / "mtlskit.toml").read_text()
    assert (restored / "inventory.db").exists()
    assert [r["name"] for r in _listing(restored, capsys)].count("dora") == 1


def test_force_over_a_home_whose_database_is_not_a_database(home, archive, tmp_path, capsys):
    target = make_home(tmp_path)
    (target / "inventory.db").write_bytes(b"this is not an SQLite file" * 100)
    assert main(["restore", str(archive), "--home", str(target), "--force"]) == 0
    [aside] = target.glob("replaced-*")
    assert (aside / "inventory.db").read_bytes().startswith(b"this is not")
    assert _listing(target, capsys) == _listing(home, capsys)


def test_a_backup_that_fails_half_way_leaves_nothing_at_file(home, tmp_path, capsys, monkeypatch):
    import mtlskit.backup.create as create

    real = create.write_archive

    def half_then_fail(out, manifest, sources, mtime):
        out.write(b"\0" * 4096)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(create, "write_archive", half_then_fail)
    assert cli(home, "backup", str(tmp_path / "b.tar")) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []              # no FILE, no temporary file or directory
    monkeypatch.setattr(create, "write_archive", real)
    assert cli(home, "backup", str(tmp_path / "b.tar")) == 0


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_modes_do_not_depend_on_the_umask(archive, tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert main(["restore", str(archive), "--home", str(tmp_path / "r")]) == 0
        assert cli(tmp_path / "r", "backup", str(tmp_path / "again.tar")) == 0
    finally:
        os.umask(previous)
    modes = _tree(tmp_path / "r")
    assert modes["."] == modes["ca"] == 0o700 and modes["ca/root.key.pem"] == 0o600 and modes["ca/root.pem"] == 0o644
    assert stat.S_IMODE((tmp_path / "again.tar").stat().st_mode) == 0o600


def test_restore_check_verifies_and_writes_nothing(home, archive, tmp_path, capsys):
    capsys.readouterr()
    assert main(["restore", str(archive), "--check", "--home", str(tmp_path / "h"), "--json"]) == 0
    checked = _json(capsys)
    assert checked["checked"] == str(archive) and checked["manifest"]["inventory"]["certificates"] == 5
    assert not (tmp_path / "h").exists() and list(tmp_path.iterdir()) == []
    damaged = tmp_path / "damaged.tar"
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        data[tar.getmember("inventory.db").offset_data + 5000] ^= 1
    damaged.write_bytes(bytes(data))
    assert main(["restore", str(damaged), "--check"]) == 2
    assert "inventory.db: its SHA-256 does not match" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.tar"]
