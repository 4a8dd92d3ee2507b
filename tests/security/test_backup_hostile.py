"""Hostile archives given to `mtlskit restore`: changed bytes, a changed manifest, a missing
or extra member, path traversal (``../``, absolute names, links, devices), truncation, a
huge member count. Each is refused with one `error:` line, exit 2, and nothing written:
the target home does not exist afterwards and its directory holds nothing new."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from mtlskit.backup.archive import created_epoch
from mtlskit.cli.app import main
from tests.conftest import on_postgresql
from tests.support_crl import cli, make_home

pytestmark = [pytest.mark.security,
              pytest.mark.skipif(on_postgresql(), reason=
                                 "about the archive, built from an SQLite home; runs once, on SQLite")]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-backup")
    home = make_home(root)
    assert cli(home, "issue", "client", "alice", "--out", str(root / "alice")) == 0
    path = root / "good.tar"
    assert cli(home, "backup", str(path)) == 0
    return path


def members_of(path: Path) -> tuple[dict, list[tuple[str, bytes]]]:
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        return manifest, [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()[1:]]


def build(path: Path, manifest: dict, entries: list) -> Path:
    """A tar of the manifest then ``entries`` ((name, bytes), or a TarInfo and bytes), with
    the headers mtlskit writes: what each test changes is the only thing wrong."""
    mtime = created_epoch(manifest.get("created_at", "2026-01-01T00:00:00Z"))
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for item in [("manifest.json", json.dumps(manifest).encode()), *entries]:
            info, data = item if isinstance(item[0], tarfile.TarInfo) else (tarfile.TarInfo(item[0]), item[1])
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o600, mtime, 0, 0, "", ""
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def listed(manifest: dict, entries: list[tuple[str, bytes]]) -> dict:
    """The manifest with members hashed from ``entries`` (a consistent forgery)."""
    return dict(manifest, members=[{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                                   for n, d in entries])


def refused(archive: Path, tmp_path: Path, capsys, *extra: str) -> str:
    target = tmp_path / "restored" / "home"
    capsys.readouterr()
    assert main(["restore", str(archive), "--home", str(target), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert not target.parent.exists() or not list(target.parent.iterdir()), "something was written"
    return err


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, b""


def test_a_changed_byte_in_any_member_is_refused(good, tmp_path, capsys):
    manifest, entries = members_of(good)
    for index, (name, data) in enumerate(entries):
        changed = bytearray(data)
        changed[len(changed) // 2] ^= 0x01
        hostile = entries[:index] + [(name, bytes(changed))] + entries[index + 1:]
        err = refused(build(tmp_path / f"flip{index}.tar", manifest, hostile), tmp_path, capsys)
        assert f"{name}: its SHA-256 does not match" in err


def test_a_changed_byte_anywhere_in_the_file_is_refused(good, tmp_path, capsys):
    data = good.read_bytes()
    for offset in (100, 700, 1600, len(data) // 2, len(data) - 3000):
        changed = bytearray(data)
        changed[offset] ^= 0x20
        path = tmp_path / f"byte{offset}.tar"
        path.write_bytes(bytes(changed))
        refused(path, tmp_path, capsys)


def test_a_changed_manifest_is_refused(good, tmp_path, capsys):
    manifest, entries = members_of(good)
    wrong_hash = json.loads(json.dumps(manifest))
    wrong_hash["members"][0]["sha256"] = "0" * 64
    assert "SHA-256 does not match" in refused(build(tmp_path / "h.tar", wrong_hash, entries), tmp_path, capsys)
    wrong_size = json.loads(json.dumps(manifest))
    wrong_size["members"][0]["size"] += 1
    assert "size" in refused(build(tmp_path / "s.tar", wrong_size, entries), tmp_path, capsys)
    newer = dict(manifest, format_version=2)
    assert "format version" in refused(build(tmp_path / "v.tar", newer, entries), tmp_path, capsys)
    unknown_schema = dict(manifest, schema_revision="9999_future")
    assert "schema revision" in refused(build(tmp_path / "r.tar", unknown_schema, entries), tmp_path, capsys)
    lying_counts = dict(listed(manifest, entries), inventory=dict(manifest["inventory"], revoked=7))
    assert "does not hold what its manifest says" in refused(
        build(tmp_path / "c.tar", lying_counts, entries), tmp_path, capsys)
    not_json = tmp_path / "j.tar"
    with tarfile.open(not_json, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"{nope"))
    assert "not JSON" in refused(not_json, tmp_path, capsys)


def test_a_consistent_forgery_is_caught_by_the_expected_sha256(good, tmp_path, capsys):
    manifest, entries = members_of(good)
    forged_entries = [(n, d.replace(b"CERTIFICATE", b"CERTIFICATE") + b"\n" if n == "ca/root.pem" else d)
                      for n, d in entries]
    forged = build(tmp_path / "forged.tar", listed(manifest, forged_entries), forged_entries)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    assert "not the one expected" in refused(forged, tmp_path, capsys, "--expect-sha256", digest)


def test_a_missing_member_is_refused(good, tmp_path, capsys):
    manifest, entries = members_of(good)
    for index, (name, _data) in enumerate(entries):
        err = refused(build(tmp_path / f"m{index}.tar", manifest, entries[:index] + entries[index + 1:]),
                      tmp_path, capsys)
        assert f"lacks {name}" in err
    without_db = [e for e in entries if e[0] != "inventory.db"]
    assert "lists no inventory.db" in refused(
        build(tmp_path / "nodb.tar", listed(manifest, without_db), without_db), tmp_path, capsys)


def test_an_extra_member_is_refused(good, tmp_path, capsys):
    manifest, entries = members_of(good)
    for extra in (("mtlskit.toml", b"public_url = 'http://evil'\n"), ("ca/intermediate-2.pem", b"x"),
                  entries[0]):
        err = refused(build(tmp_path / "extra.tar", manifest, entries + [extra]), tmp_path, capsys)
        assert "does not list" in err or "twice" in err
    appended = tmp_path / "appended.tar"
    appended.write_bytes(good.read_bytes())
    with tarfile.open(appended, "a") as tar:
        info = tarfile.TarInfo("mtlskit.toml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x=1"))
    assert "does not list" in refused(appended, tmp_path, capsys)


@pytest.mark.parametrize("name", ["../x", "../../etc/cron.d/x", "/etc/passwd", "/tmp/x.pem", "ca/../../x.pem",
                                  "./inventory.db", "ca//root.pem", "ca/root.pem/", "CA/root.pem",
                                  "ca/evil.pem", "inventory.db\x00x", "ca/root.pem\n"])
def test_names_outside_the_allowed_set_are_refused(good, tmp_path, capsys, name):
    manifest, entries = members_of(good)
    data = b"-----BEGIN CERTIFICATE-----\n"
    forged = entries + [(name, data)]
    manifest = listed(manifest, entries)
    manifest["members"].append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    try:
        archive = build(tmp_path / "name.tar", manifest, forged)
    except ValueError:   # tarfile will not even write this name
        pytest.skip("not representable in a tar header")
    refused(archive, tmp_path, capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("member", [
    ("ca/root.pem", tarfile.SYMTYPE, "/etc/passwd"),
    ("ca/root.pem", tarfile.LNKTYPE, "inventory.db"),
    ("inventory.db", tarfile.CHRTYPE, ""),
    ("inventory.db", tarfile.BLKTYPE, ""),
    ("inventory.db", tarfile.FIFOTYPE, ""),
    ("ca/root.pem", tarfile.DIRTYPE, ""),
    ("ca/root.pem", tarfile.GNUTYPE_SPARSE, ""),
], ids=["symlink", "hardlink", "chardev", "blockdev", "fifo", "directory", "sparse"])
def test_links_devices_and_directories_are_refused(good, tmp_path, capsys, member):
    manifest, entries = members_of(good)
    name, kind, linkname = member
    hostile = [special(name, kind, linkname) if n == name else (n, d) for n, d in entries]
    err = refused(build(tmp_path / "special.tar", manifest, hostile), tmp_path, capsys)
    assert "not a regular file" in err or "size" in err


def test_a_truncated_archive_is_refused(good, tmp_path, capsys):
    data = good.read_bytes()
    for cut in (0, 10, 511, 512, 1024, 2048, len(data) // 2, len(data) - 1024, len(data) - 1):
        path = tmp_path / f"cut{cut}.tar"
        path.write_bytes(data[:cut])
        refused(path, tmp_path, capsys)


def test_a_huge_member_count_is_refused_without_reading_them_all(good, tmp_path, capsys):
    manifest, entries = members_of(good)
    many = [{"name": "ca/root.pem", "size": 1, "sha256": "0" * 64}] * 1000
    assert "members" in refused(build(tmp_path / "many.tar", dict(manifest, members=many), entries),
                                tmp_path, capsys)
    flood = tmp_path / "flood.tar"
    with tarfile.open(flood, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        body = json.dumps(manifest).encode()
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        for n in range(5000):
            extra = tarfile.TarInfo(f"ca/intermediate-{n % 9000 + 10}.pem")
            tar.addfile(extra, io.BytesIO(b""))
    refused(flood, tmp_path, capsys)


def test_inputs_that_are_not_archives_are_refused(tmp_path, capsys):
    for name, data in (("empty", b""), ("zeros", b"\0" * 10240), ("text", b"hello\n" * 300),
                       ("gzip", b"\x1f\x8b\x08\x00" + b"\0" * 600)):
        path = tmp_path / name
        path.write_bytes(data)
        refused(path, tmp_path, capsys)
    refused(tmp_path / "absent.tar", tmp_path, capsys)
    refused(Path("/dev/zero"), tmp_path, capsys)


def test_a_pax_or_long_name_header_is_refused_before_it_is_read(good, tmp_path, capsys):
    """tarfile reads an extended header's whole claimed size into memory; mtlskit writes
    none, so one is refused from its 512-byte header, whatever size it claims."""
    manifest, entries = members_of(good)
    plain = build(tmp_path / "plain.tar", manifest, entries)
    with tarfile.open(plain) as tar:
        second = tar.getmember(entries[0][0]).offset
    data = bytearray(plain.read_bytes())
    for offset, kind in [(0, b"x"), *((second, kind) for kind in (b"x", b"g", b"L", b"K"))]:
        header = bytearray(data[offset:offset + 512])
        header[156:157] = kind
        header[124:136] = b"77777777777\0"                   # claims 8 GiB
        header[148:156] = b"        "
        header[148:156] = b"%06o\0 " % sum(header)
        path = tmp_path / f"ext-{offset}-{kind.decode()}.tar"
        path.write_bytes(bytes(data[:offset] + header + data[offset + 512:]))
        assert "tar type" in refused(path, tmp_path, capsys)
