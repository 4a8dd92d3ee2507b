"""The CA directory under attack: a certificate dropped into HOME/ca/ with an
intermediate's name never becomes the issuing CA; the root key is never exported
through a symlink or over a file, nor imported from a file others can read."""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives import serialization

from mtlskit.ca.authority import CaRequest, create_authority


def test_a_stray_certificate_never_becomes_the_issuing_ca(fresh_home, tmp_path, cli):
    stranger = create_authority(CaRequest("Stranger"), dt.datetime.now(dt.timezone.utc))
    pem = stranger.issuing.certificate.public_bytes(serialization.Encoding.PEM)
    (fresh_home / "ca" / "intermediate-2.pem").write_bytes(pem)
    (fresh_home / "ca" / "intermediate-2.key.pem").write_bytes(stranger.issuing.private_key_pem(None))
    result = cli("--home", fresh_home, "issue", "client", "mallory", "--out", tmp_path / "mallory")
    assert result.code == 2
    assert result.err.startswith("error: ") and "is not a CA certificate signed by this root" in result.err
    assert not (tmp_path / "mallory").exists()


def test_export_never_follows_a_symlink_or_overwrites(fresh_home, tmp_path, cli):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep me")
    link = tmp_path / "link.key"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.key"
    dangling.symlink_to(tmp_path / "nowhere")
    for out in (link, dangling):
        result = cli("--home", fresh_home, "root", "export-key", "--out", out)
        assert result.code == 4 and "already exists" in result.err
    assert target.read_bytes() == b"keep me" and not (tmp_path / "nowhere").exists()


def test_import_refuses_a_key_file_others_can_read(fresh_home, tmp_path, cli):
    out = tmp_path / "root.key"
    assert cli("--home", fresh_home, "root", "export-key", "--out", out, "--remove").code == 0
    out.chmod(0o644)
    result = cli("--home", fresh_home, "root", "import-key", out)
    assert result.code == 2 and "chmod 600" in result.err
    assert not (fresh_home / "ca" / "root.key.pem").exists()
