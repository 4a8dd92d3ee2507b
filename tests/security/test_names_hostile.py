"""NAMEs are identifiers: `issue`, `sign` and `deploy` refuse anything else (issue 10, door 2).

A NAME ends up in server configurations (server_name, ServerName, HAProxy section
names), in directory names and in log lines; `sign` takes it from a CSR written by
someone else. Each refusal is exit 2, one line, and writes nothing.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtlskit.config import load_settings
from mtlskit.service import Service

HOSTILE_NAMES = [
    "", "a b", "api.example.com\n", "api.example.com\n    bind :9999", "x;y", "x{y}", "x}", "x#y", 'x"y',
    "x'y", "x\\y", "x$y", "${X}", "%{X}", "x/y", "..", ".hidden", "-rf", "x\x00y", "x\ry", "x\ty",
    "\u0430pi.example.com", "api\u200b", "a" * 65, "deadbeef", "0123456789", "DEADBEEFCAFE",
]


def _count(home) -> int:
    return Service.open(load_settings(home)).inventory.count()


def _one_line(err: str) -> bool:
    lines = err.splitlines()
    return lines[0].startswith("error: ") and len(lines) <= 2 and all(
        line.startswith("hint: ") for line in lines[1:])


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_issue_refuses_a_hostile_name_and_writes_nothing(ca_home, tmp_path, cli, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    before = _count(ca_home)
    result = cli("--home", ca_home, "issue", "client", "--", name)
    assert result.code == 2, result.out
    assert _one_line(result.err), result.err
    assert "not a valid NAME" in result.err or "looks like a serial number" in result.err
    assert list(tmp_path.iterdir()) == []
    assert _count(ca_home) == before


def test_issue_refuses_a_hostile_name_in_a_batch_file_before_anything(ca_home, tmp_path, cli):
    names = tmp_path / "names.txt"
    names.write_text("good-one\nx;y\ngood-two\n")
    before = _count(ca_home)
    result = cli("--home", ca_home, "issue", "client", "--from", names, "--out", tmp_path / "out")
    assert result.code == 2 and "'x;y' is not a valid NAME" in result.err
    assert not (tmp_path / "out").exists() and _count(ca_home) == before


@pytest.mark.parametrize("name", ["api.example.com", "svc_1", "alice@example.com", "node-0a1b2c3d", "A.b-c_d@e"])
def test_issue_accepts_identifiers(ca_home, tmp_path, cli, name):
    result = cli("--home", ca_home, "issue", "client", name, "--out", tmp_path / "out")
    assert result.code == 0, result.err


def _csr(cn: str | None, dns: list[str] = ()) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn is not None else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


INJECTING_CN = "x.example.com\n    bind :9999"


@pytest.mark.parametrize("cn", ["x.example.com\n    bind :9999", "a;b", "x{}", 'x"y', "${X}", "deadbeef00",
                                "\u0430pi.example.com"])
def test_sign_refuses_a_csr_whose_cn_is_not_a_name_without_name(ca_home, tmp_path, cli, cn):
    csr = tmp_path / "req.pem"
    csr.write_bytes(_csr(cn, ["x.example.com"]))
    before = _count(ca_home)
    result = cli("--home", ca_home, "sign", csr, "--profile", "server", "--out", tmp_path / "cert.pem")
    assert result.code == 2, result.out
    assert _one_line(result.err), result.err
    assert "is not a valid NAME" in result.err and "give --name NAME" in result.err
    assert not (tmp_path / "cert.pem").exists() and _count(ca_home) == before


def test_sign_with_name_uses_it_as_subject_and_inventory_name(ca_home, tmp_path, cli):
    csr = tmp_path / "req.pem"
    csr.write_bytes(_csr(INJECTING_CN, ["x.example.com"]))
    result = cli("--home", ca_home, "sign", csr, "--profile", "server", "--name", "x.example.com",
                 "--out", tmp_path / "cert.pem")
    assert result.code == 0, result.err
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "x.example.com"
    assert "signed server x.example.com" in result.out


def test_sign_refuses_a_hostile_name_option(ca_home, tmp_path, cli):
    csr = tmp_path / "req.pem"
    csr.write_bytes(_csr("ok.example.com"))
    result = cli("--home", ca_home, "sign", csr, "--profile", "server", "--name", "a;b")
    assert result.code == 2 and result.err.startswith("error: --name 'a;b' is not a valid NAME")


def test_sign_takes_a_valid_cn_and_asks_for_a_name_without_one(ca_home, tmp_path, cli):
    csr = tmp_path / "req.pem"
    csr.write_bytes(_csr("device-42"))
    assert cli("--home", ca_home, "sign", csr, "--profile", "client").code == 0
    csr.write_bytes(_csr(None))
    result = cli("--home", ca_home, "sign", csr, "--profile", "client")
    assert result.code == 2 and "give --name NAME" in result.err


def test_a_cn_signed_by_sign_cannot_inject_into_deploy(fresh_home, tmp_path, cli):
    """The door as found: sign took the CN, deploy wrote it into the HAProxy file."""
    assert cli("--home", fresh_home, "crl").code == 0
    before = _count(fresh_home)
    csr = tmp_path / "req.pem"
    csr.write_bytes(_csr(INJECTING_CN, ["x.example.com"]))
    assert cli("--home", fresh_home, "sign", csr, "--profile", "server").code == 2
    deployed = cli("--home", fresh_home, "deploy", "haproxy", "--name", INJECTING_CN, "--ip", "127.0.0.1",
                   "--dir", tmp_path / "h", "--listen", "127.0.0.1:8443", "--standalone")
    assert deployed.code == 2 and "--name" in deployed.err and "is not a valid NAME" in deployed.err
    assert not (tmp_path / "h").exists()
    assert _count(fresh_home) == before
