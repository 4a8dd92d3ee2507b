"""issue/identity.py: the one issue-and-hand-over workflow of the REST API and the web UI,
and its scratch directory (0700, removed on every path, stale ones swept)."""

from __future__ import annotations

import os
import stat

import pytest

from mtlskit.issue.identity import STALE_SECONDS, issue_handed_over, scratch_directory


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_scratch_directory_is_private_and_removed_after_use(tmp_path):
    parent = tmp_path / "scratch"
    with scratch_directory(parent) as scratch:
        assert _mode(parent) == 0o700 and _mode(scratch) == 0o700
        (scratch / "key.pem").write_text("a key")
    assert parent.is_dir() and not any(parent.iterdir())


def test_the_scratch_directory_is_removed_when_the_block_raises(tmp_path):
    parent = tmp_path / "scratch"
    with pytest.raises(RuntimeError, match="signing failed"):
        with scratch_directory(parent) as scratch:
            (scratch / "bundle").mkdir()
            (scratch / "bundle" / "key.pem").write_text("a key")
            raise RuntimeError("signing failed")
    assert not any(parent.iterdir())


def test_a_stale_scratch_directory_is_swept_on_the_next_use(tmp_path):
    parent = tmp_path / "scratch"
    parent.mkdir(mode=0o700)
    (parent / "dead").mkdir()
    (parent / "dead" / "key.pem").write_text("a key left by a killed process")
    old = os.stat(parent / "dead").st_mtime - STALE_SECONDS - 1
    os.utime(parent / "dead", (old, old))
    with scratch_directory(parent) as scratch:
        assert [entry.name for entry in parent.iterdir()] == [scratch.name]
    assert not any(parent.iterdir())


def test_the_workflow_hands_over_a_0600_key_and_keeps_nothing(tmp_path, monkeypatch):
    import shutil

    from mtlskit.issue.bundle import BundleOptions
    from mtlskit.issue.issuer import IssueRequest, SanRequest
    from mtlskit.issue.profiles import PROFILES
    from mtlskit.issue.subject import defaults_of
    from mtlskit.pki.encoding import load_certificates, load_private_key
    from mtlskit.pki.keys import KeyType
    from mtlskit.pki.pkcs12 import P12Profile
    from tests.support_ui import UiPki

    pki = UiPki(tmp_path)
    seen = {}
    real_rmtree = shutil.rmtree

    def look_then_remove(path, *args, **kwargs):  # the files as they were on disk, just before removal
        seen.update({p.name: _mode(p) for p in (pki.home / "scratch").rglob("*") if p.is_file()})
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", look_then_remove)
    request = IssueRequest(PROFILES["client"], "handed", SanRequest(), defaults_of(pki.service.settings), None)
    options = BundleOptions(p12=True, p12_profile=P12Profile.MODERN, p12_password=b"correct horse")
    handed = issue_handed_over(pki.service, pki.authority, request, KeyType.parse("ec-p256"), options)
    monkeypatch.undo()
    assert seen["key.pem"] == 0o600 and seen["bundle.p12"] == 0o600
    key = load_private_key(handed.files["key.pem"])
    assert key.public_key() == load_certificates(handed.files["cert.pem"])[0].public_key()
    assert handed.record.directory is None and pki.record("handed").serial == handed.record.serial
    assert not any((pki.home / "scratch").iterdir())
