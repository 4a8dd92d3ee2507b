"""Issue 14, CA keys in an HSM: `init --pkcs11-module/--pkcs11-token/--pkcs11-pin-file`
creates the root and intermediate keys inside a real SoftHSM2 token (sensitive, never
extractable); issuance (single and forked batch), CRLs, the OCSP responder's certificate,
renew and rotation sign through the token, and openssl and pkilint accept every signature,
for each key type a token keeps."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mtlskit.clock import FixedClock
from mtlskit.config import load_settings
from mtlskit.issue import pool
from mtlskit.publish.responder import ResponderFiles, ensure_responder
from mtlskit.service import Service
from tests.judges import openssl, pkilint
from tests.support_softhsm import PIN, start_softhsm

TOKEN = "mtlskit-ca"
KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    hsm = start_softhsm(tmp_path_factory.mktemp("softhsm"), TOKEN)
    yield hsm
    hsm.close()


@pytest.fixture(scope="module")
def homes(hsm, tmp_path_factory):
    """One HSM home per key type (keys labelled <key type>-root, <key type>-intermediate)."""
    from mtlskit.cli.app import main

    base = tmp_path_factory.mktemp("homes")
    for key_type in KEY_TYPES:
        home = base / key_type
        code = main(["--home", str(home), "init", "--name", f"HSM {key_type}", "--key-type", key_type,
                     "--public-url", "http://127.0.0.1:9", *hsm.init_args(TOKEN, key_type)])
        assert code == 0, key_type
    return base


def _judge_certificate(home: Path, leaf: Path, issuer: str = "intermediate") -> None:
    result = openssl("verify", "-CAfile", home / "ca" / "root.pem", "-untrusted", home / "ca" / f"{issuer}.pem", leaf)
    assert result.returncode == 0, result.stderr
    assert pkilint("cert", leaf) == ""


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_the_keys_are_made_inside_the_token_sensitive_and_never_extractable(hsm, homes, key_type):
    home = homes / key_type
    keys = {entry["label"]: entry for entry in hsm.objects(TOKEN) if entry.get("SENSITIVE") is not None}
    for name in ("root", "intermediate"):
        private = keys[f"{key_type}-{name}"]
        assert private["SENSITIVE"] and not private["EXTRACTABLE"] and private["TOKEN"]
        assert private["ALWAYS_SENSITIVE"] and private["NEVER_EXTRACTABLE"]   # born in the token
        assert not (home / "ca" / f"{name}.key.pem").exists()
        reference = json.loads((home / "ca" / f"{name}.pkcs11.json").read_text())
        assert reference == {"module": str(hsm.module), "token": TOKEN, "pin_file": str(hsm.pin_file),
                             "label": f"{key_type}-{name}", "id": private["id"], "key_type": key_type}
        assert (home / "ca" / f"{name}.pkcs11.json").stat().st_mode & 0o777 == 0o600
    assert PIN not in "".join(path.read_text(errors="replace") for path in home.rglob("*") if path.is_file())


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_ca_certificates_and_leaves_signed_in_the_token_pass_openssl_and_pkilint(homes, cli, tmp_path, key_type):
    home = homes / key_type
    root = x509.load_pem_x509_certificate((home / "ca" / "root.pem").read_bytes())
    expected = ec.EllipticCurvePublicKey if key_type.startswith("ec") else rsa.RSAPublicKey
    assert isinstance(root.public_key(), expected)
    assert openssl("verify", "-CAfile", home / "ca" / "root.pem", home / "ca" / "intermediate.pem").returncode == 0
    result = cli("--home", home, "issue", "server", "web.example", "--out", tmp_path / "web")
    assert result.code == 0, result.err
    _judge_certificate(home, tmp_path / "web" / "cert.pem")


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_crls_signed_in_the_token_verify_with_openssl_and_lint_clean(homes, cli, tmp_path, key_type):
    home = homes / key_type
    assert cli("--home", home, "issue", "client", "gone", "--out", tmp_path / "gone").code == 0
    assert cli("--home", home, "revoke", "gone").code == 0
    assert cli("--home", home, "crl").code == 0
    for name in ("root", "intermediate"):
        crl = home / "crl" / f"{name}.crl"
        result = openssl("crl", "-inform", "DER", "-in", crl, "-noout", "-verify",
                         "-CAfile", home / "ca" / "root.pem") if name == "root" else \
            openssl("crl", "-inform", "DER", "-in", crl, "-noout", "-verify", "-CAfile", home / "ca" / f"{name}.pem")
        assert result.returncode == 0 and b"verify OK" in result.stderr + result.stdout, result.stderr
        assert pkilint("crl", crl, "-t", "CRL", "-p", "PKIX") == ""
    serial = x509.load_pem_x509_certificate((tmp_path / "gone" / "cert.pem").read_bytes()).serial_number
    revoked = x509.load_der_x509_crl((home / "crl" / "intermediate.crl").read_bytes())
    assert revoked.get_revoked_certificate_by_serial_number(serial) is not None


def test_the_ocsp_responder_certificate_is_signed_in_the_token(homes, tmp_path):
    home = homes / "ec-p256"
    service = Service.open(load_settings(home), FixedClock(dt.datetime.now(dt.timezone.utc)))
    authority = service.authority(lambda: None)   # no passphrase: the keys are in the token
    responder, created = ensure_responder(ResponderFiles(tmp_path, "intermediate"), authority.issuing, service.clock)
    assert created
    _judge_certificate(home, ResponderFiles(tmp_path, "intermediate").certificate_path)


def test_a_forked_batch_signs_in_each_worker_with_its_own_session(homes, cli, tmp_path):
    home = homes / "ec-p256"
    count = 200
    assert pool.worker_count(count) > 1 or os.cpu_count() == 1
    names = tmp_path / "names.txt"
    names.write_text("".join(f"device-{n}\n" for n in range(count)))
    result = cli("--home", home, "issue", "client", "--from", names, "--out", tmp_path / "batch")
    assert result.code == 0, result.err
    leaves = sorted((tmp_path / "batch").glob("*/cert.pem"))
    assert len(leaves) == count
    verdict = openssl("verify", "-CAfile", home / "ca" / "root.pem",
                      "-untrusted", home / "ca" / "intermediate.pem", *leaves)
    assert verdict.returncode == 0 and verdict.stdout.count(b": OK") == count, verdict.stderr


def test_renew_signs_through_the_token(homes, cli, tmp_path):
    home = homes / "rsa-2048"
    assert cli("--home", home, "issue", "client", "renewed", "--out", tmp_path / "renewed").code == 0
    before = x509.load_pem_x509_certificate((tmp_path / "renewed" / "cert.pem").read_bytes())
    result = cli("--home", home, "renew", "renewed")
    assert result.code == 0, result.out + result.err
    after = x509.load_pem_x509_certificate((tmp_path / "renewed" / "cert.pem").read_bytes())
    assert after.serial_number != before.serial_number
    _judge_certificate(home, tmp_path / "renewed" / "cert.pem")


def test_rotate_intermediate_makes_the_new_key_in_the_token(hsm, homes, cli, tmp_path):
    home = homes / "ec-p384"
    result = cli("--home", home, "rotate", "intermediate")
    assert result.code == 0, result.err
    assert (home / "ca" / "intermediate-2.pkcs11.json").exists()
    assert not (home / "ca" / "intermediate-2.key.pem").exists()
    labels = {entry["label"]: entry for entry in hsm.objects(TOKEN) if entry.get("SENSITIVE") is not None}
    assert not labels["ec-p384-intermediate-2"]["EXTRACTABLE"]
    assert cli("--home", home, "issue", "client", "after", "--out", tmp_path / "after").code == 0
    _judge_certificate(home, tmp_path / "after" / "cert.pem", issuer="intermediate-2")


def test_a_signer_in_a_forked_child_opens_its_own_session(homes):
    """The parent's session is never used in a child: the child logs in anew (the session
    generation moves), signs, and the parent still signs afterwards."""
    import multiprocessing

    home = homes / "ec-p256"
    service = Service.open(load_settings(home), FixedClock(dt.datetime.now(dt.timezone.utc)))
    issuing = service.authority(lambda: None).issuing
    public_key = issuing.certificate.public_key()
    public_key.verify(issuing.sign_bytes(b"parent"), b"parent", ec.ECDSA(issuing.hash_algorithm))
    token_session = issuing._key._token
    parent_pid, parent_generation = token_session._pid, token_session.generation

    def child(queue):
        signature = issuing.sign_bytes(b"child")
        queue.put((signature, token_session._pid, token_session.generation))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    signature, child_pid, child_generation = queue.get(timeout=30)
    process.join(30)
    assert process.exitcode == 0
    public_key.verify(signature, b"child", ec.ECDSA(issuing.hash_algorithm))
    assert child_pid == process.pid != parent_pid and child_generation == parent_generation + 1
    public_key.verify(issuing.sign_bytes(b"again"), b"again", ec.ECDSA(issuing.hash_algorithm))
    assert token_session._pid == parent_pid == os.getpid()


def test_a_token_key_cannot_be_serialised(homes):
    from cryptography.hazmat.primitives import serialization

    from mtlskit.errors import BadInput

    service = Service.open(load_settings(homes / "ec-p256"), FixedClock(dt.datetime.now(dt.timezone.utc)))
    issuing = service.authority(lambda: None).issuing
    with pytest.raises(BadInput, match="cannot leave the token"):
        issuing.private_key_pem(None)
    with pytest.raises(BadInput, match="cannot leave the token"):
        issuing._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())


def test_each_home_records_its_own_pin_file(hsm, homes, tmp_path, cli):
    """Two homes on one token, each with its PIN file: each reference names its own (this
    process already holds a session opened through the other file)."""
    own = tmp_path / "own-pin"
    own.write_text(PIN + "\n")
    own.chmod(0o600)
    home = tmp_path / "home"
    args = hsm.init_args(TOKEN, "own")
    args[args.index("--pkcs11-pin-file") + 1] = str(own)
    assert cli("--home", home, "init", *args).code == 0
    for name in ("root", "intermediate"):
        assert json.loads((home / "ca" / f"{name}.pkcs11.json").read_text())["pin_file"] == str(own)


def test_sign_a_csr_through_the_token(homes, cli, tmp_path):
    home = homes / "rsa-3072"
    key, csr = tmp_path / "key.pem", tmp_path / "req.csr"
    made = openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", key, "-subj", "/CN=api.example.com", "-out", csr)
    assert made.returncode == 0, made.stderr
    result = cli("--home", home, "sign", csr, "--profile", "server", "--out", tmp_path / "cert.pem")
    assert result.code == 0, result.err
    _judge_certificate(home, tmp_path / "cert.pem")
