"""What renew replaces is a directory of regular files it wrote: a symlink planted in it (or
in its place), a FIFO, a key readable by others, are refused with one line and nothing
written or followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _issue(cli, home: Path, out: Path) -> None:
    assert cli("--home", home, "issue", "client", "mallory", "--out", out).code == 0


def _tree(path: Path) -> dict:
    return {str(p): (p.is_symlink(), p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(path.rglob("*")) if not str(p).startswith(str(path / "home"))}


@pytest.mark.parametrize("plant", ["symlink-in-place-of-cert", "fifo", "subdirectory", "directory-is-a-symlink"])
def test_foreign_entries_are_refused(fresh_home, tmp_path, cli, plant):
    out = tmp_path / "m"
    _issue(cli, fresh_home, out)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    if plant == "symlink-in-place-of-cert":
        (out / "cert.pem").unlink()
        (out / "cert.pem").symlink_to(secret)
    elif plant == "fifo":
        os.mkfifo(out / "pipe")
    elif plant == "subdirectory":
        (out / "sub").mkdir()
    else:
        out.rename(tmp_path / "real")
        out.symlink_to(tmp_path / "real")
    before = _tree(tmp_path)
    result = cli("--home", fresh_home, "renew", "mallory")
    assert result.code == 2, result.err
    first = result.err.splitlines()[0]
    assert first.startswith("error: ") and ("refusing to replace it" in first or "not a regular file" in first)
    assert _tree(tmp_path) == before
    assert secret.read_text() == "not yours\n"


def test_reuse_key_refuses_a_key_others_can_read(fresh_home, tmp_path, cli):
    out = tmp_path / "m"
    _issue(cli, fresh_home, out)
    (out / "key.pem").chmod(0o644)
    result = cli("--home", fresh_home, "renew", "mallory", "--reuse-key")
    assert result.code == 2 and "group or others have access" in result.err.splitlines()[0]
    assert not (out / "cert.pem.prev").exists()
