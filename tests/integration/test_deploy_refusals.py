"""`deploy` refuses, in one line naming the option, what it used to ignore or crash on
(issue 10, smaller defects): an unwritable --dir, a --cert-dir that holds nothing usable,
--dns/--ip that would not be used. A refusal writes nothing."""

from __future__ import annotations

import errno
import os

import pytest

from mtlskit.config import load_settings
from mtlskit.deploy.records import list_deployments
from mtlskit.service import Service


def _state(home) -> tuple[int, int]:
    service = Service.open(load_settings(home))
    return service.inventory.count(), len(list_deployments(service.inventory))


def _deploy(cli, home, directory, *extra, name="svc.example.com"):
    return cli("--home", home, "deploy", "nginx", "--name", name, "--dir", directory,
               "--listen", "127.0.0.1:8443", "--revocation", "none", *extra)


def _one_line_error(result) -> str:
    lines = result.err.splitlines()
    assert result.code == 2, (result.code, result.err)
    assert lines[0].startswith("error: ") and "Traceback" not in result.err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), result.err
    return lines[0]


def test_a_dir_under_a_file_is_a_one_line_error_naming_it(ca_home, tmp_path, cli):
    (tmp_path / "file").write_text("")
    before = _state(ca_home)
    line = _one_line_error(_deploy(cli, ca_home, tmp_path / "file" / "d"))
    assert f"--dir {tmp_path / 'file' / 'd'}" in line
    assert _state(ca_home) == before


def _unwritable_parent(tmp_path):
    """A directory this process cannot create entries in: 0555 for a user, sysfs for root."""
    if os.geteuid() != 0:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o555)
        return parent
    try:
        os.mkdir("/sys/mtlskit-probe")
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
            return "/sys"
    else:
        os.rmdir("/sys/mtlskit-probe")
    pytest.skip("no directory here refuses root")


def test_an_unwritable_dir_is_a_one_line_error_naming_it(ca_home, tmp_path, cli):
    parent = _unwritable_parent(tmp_path)
    before = _state(ca_home)
    line = _one_line_error(_deploy(cli, ca_home, f"{parent}/mtlskit-deploy"))
    assert "internal error" not in line and f"--dir {parent}/mtlskit-deploy" in line
    assert _state(ca_home) == before                    # no certificate issued for nothing


def test_a_refused_issuance_leaves_no_directory(ca_home, tmp_path, cli):
    """A NAME that is no host name needs --dns/--ip (a wildcard --listen names no IP to add):
    refused, and the --dir is not left behind."""
    result = cli("--home", ca_home, "deploy", "nginx", "--name", "not-a-host", "--dir", tmp_path / "a" / "b",
                 "--listen", "8443", "--revocation", "none")
    assert result.code == 4 and "subjectAltName" in result.err
    assert not (tmp_path / "a").exists()


def test_a_cert_dir_that_does_not_exist_is_refused(ca_home, tmp_path, cli):
    line = _one_line_error(_deploy(cli, ca_home, tmp_path / "d", "--cert-dir", tmp_path / "nowhere"))
    assert f"--cert-dir '{tmp_path / 'nowhere'}' is not a directory" in line
    assert not (tmp_path / "d").exists()


def test_a_cert_dir_of_garbage_is_refused(ca_home, tmp_path, cli):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "fullchain.pem").write_text("not a certificate\n")
    (garbage / "key.pem").write_text("not a key\n")
    line = _one_line_error(_deploy(cli, ca_home, tmp_path / "d", "--cert-dir", garbage))
    assert f"cannot read the server certificate in {garbage}" in line
    assert not (tmp_path / "d").exists()


def test_an_empty_cert_dir_is_refused_not_passed_over(fresh_home, tmp_path, cli):
    """The deployment directory already holds a valid certificate: a --cert-dir that holds
    none used to be ignored without a word."""
    assert _deploy(cli, fresh_home, tmp_path / "d").code == 0
    (tmp_path / "empty").mkdir()
    before = _state(fresh_home)
    line = _one_line_error(_deploy(cli, fresh_home, tmp_path / "d", "--cert-dir", tmp_path / "empty"))
    assert f"--cert-dir {tmp_path / 'empty'} holds no key.pem + fullchain.pem" in line
    assert _state(fresh_home) == before


def test_a_cert_dir_holding_another_name_is_refused(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "server", "other.example.com", "--out", tmp_path / "other").code == 0
    line = _one_line_error(_deploy(cli, fresh_home, tmp_path / "d", "--cert-dir", tmp_path / "other"))
    assert "named 'svc.example.com'" in line
    assert not (tmp_path / "d").exists()


def test_dns_and_ip_a_reused_certificate_lacks_are_refused(fresh_home, tmp_path, cli):
    first = _deploy(cli, fresh_home, tmp_path / "d", "--dns", "alt.example.com", "--ip", "127.0.0.1")
    assert first.code == 0, first.err
    conf = (tmp_path / "d" / "mtls-server.conf").read_bytes()
    again = _deploy(cli, fresh_home, tmp_path / "d", "--dns", "alt.example.com", "--ip", "127.0.0.1")
    assert again.code == 0 and "using server certificate" in again.out      # same flags: idempotent
    before = _state(fresh_home)
    line = _one_line_error(_deploy(cli, fresh_home, tmp_path / "d", "--dns", "new.example.com", "--ip", "10.0.0.1"))
    assert "DNS:new.example.com, IP:10.0.0.1 not in the server certificate svc.example.com" in line
    assert _state(fresh_home) == before
    assert (tmp_path / "d" / "mtls-server.conf").read_bytes() == conf


def test_an_unused_passphrase_file_that_does_not_exist_is_refused(ca_home, tmp_path, cli):
    line = _one_line_error(_deploy(cli, ca_home, tmp_path / "d", "--passphrase-file", tmp_path / "nope"))
    assert "--passphrase-file" in line and "is not a readable file" in line
