"""What mtlskit signs, judged by openssl, pkilint, keytool and a real TLS handshake."""

import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509

from tests.judges import openssl, pkilint

pytestmark = pytest.mark.e2e
KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ed25519"]


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    """One CA per key type, with a server, a client and a peer from each."""
    from mtlskit.cli.app import main

    base = tmp_path_factory.mktemp("judged")
    result = {}
    for key_type in KEY_TYPES:
        home = base / key_type / "home"
        assert main(["--home", str(home), "init", "--no-passphrase", "--key-type", key_type,
                     "--public-url", "http://pki.example.com:8080"]) == 0
        for profile, name in (("server", "srv.example.com"), ("client", "alice"), ("peer", "svc.example.com")):
            out = base / key_type / name
            assert main(["--home", str(home), "issue", profile, name, "--key-type", key_type,
                         "--out", str(out)]) == 0
            result[(key_type, profile)] = out
        result[(key_type, "home")] = home
    single = base / "single" / "home"
    assert main(["--home", str(single), "init", "--no-passphrase", "--no-intermediate"]) == 0
    assert main(["--home", str(single), "issue", "client", "solo", "--out", str(base / "single" / "solo")]) == 0
    result[("single", "client")] = base / "single" / "solo"
    result[("single", "home")] = single
    return result


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_signed_certificate_lints_clean(issued, key_type):
    home = issued[(key_type, "home")]
    files = [home / "ca" / "root.pem", home / "ca" / "intermediate.pem"]
    files += [issued[(key_type, p)] / "cert.pem" for p in ("server", "client", "peer")]
    findings = {f.name if "ca" in f.parts else f.parent.name: pkilint("cert", f) for f in files}
    assert findings == {k: "" for k in findings}


def test_pkilint_is_a_real_judge(tmp_path):
    """A certificate mtlskit would never write (no SKI/AKI, CA leaf with EKU) is flagged."""
    import datetime as dt
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bad")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
            .sign(key, hashes.SHA256()))
    bad = tmp_path / "bad.pem"
    bad.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert pkilint("cert", bad) != ""


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("profile,good,bad", [("server", "sslserver", "sslclient"),
                                              ("client", "sslclient", "sslserver")])
def test_openssl_verifies_for_the_right_purpose_only(issued, key_type, profile, good, bad):
    out = issued[(key_type, profile)]
    ok = openssl("verify", "-CAfile", out / "ca.pem", "-untrusted", out / "chain.pem", "-purpose", good, out / "cert.pem")
    assert ok.returncode == 0, ok.stderr
    wrong = openssl("verify", "-CAfile", out / "ca.pem", "-untrusted", out / "chain.pem", "-purpose", bad, out / "cert.pem")
    assert wrong.returncode != 0 and b"unsuitable certificate purpose" in wrong.stderr + wrong.stdout


def test_peer_verifies_for_both_purposes(issued):
    out = issued[("ec-p256", "peer")]
    for purpose in ("sslserver", "sslclient"):
        assert openssl("verify", "-CAfile", out / "ca.pem", "-untrusted", out / "chain.pem",
                       "-purpose", purpose, out / "cert.pem").returncode == 0


def test_chain_without_intermediate_fails_and_single_ca_layout_verifies(issued):
    out = issued[("ec-p256", "client")]
    missing = openssl("verify", "-CAfile", out / "ca.pem", out / "cert.pem")
    assert missing.returncode != 0
    solo = issued[("single", "client")]
    assert solo.joinpath("chain.pem").read_bytes() == b""
    assert openssl("verify", "-CAfile", solo / "ca.pem", "-purpose", "sslclient", solo / "cert.pem").returncode == 0


def _serve_once(context: ssl.SSLContext, listener: socket.socket, outcome: dict) -> None:
    conn, _ = listener.accept()
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert()
            outcome["peer"] = dict(x[0] for x in peer["subject"]) if peer else None
            tls.sendall(b"hello")
    except (ssl.SSLError, OSError) as exc:
        outcome["error"] = exc


def _handshake(server_dir, trust_ca, client_dir):
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(server_dir / "fullchain.pem", server_dir / "key.pem")
    server_ctx.load_verify_locations(trust_ca)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome: dict = {}
    thread = threading.Thread(target=_serve_once, args=(server_ctx, listener, outcome), daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(server_dir / "ca.pem"))
    client_ctx.load_cert_chain(client_dir / "fullchain.pem", client_dir / "key.pem")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="srv.example.com") as tls:
                outcome["data"] = tls.recv(5)
    except (ssl.SSLError, OSError) as exc:
        outcome["client_error"] = exc
    thread.join(10)
    listener.close()
    return outcome


def test_real_mtls_handshake_accepts_our_client_and_refuses_another_cas(issued):
    server = issued[("ec-p256", "server")]
    accepted = _handshake(server, server / "ca.pem", issued[("ec-p256", "client")])
    assert accepted.get("data") == b"hello" and accepted["peer"]["commonName"] == "alice"
    foreign = _handshake(server, server / "ca.pem", issued[("ec-p384", "client")])
    assert "data" not in foreign
    assert "unknown ca" in str(foreign.get("error", "")).lower() or "certificate verify failed" in str(foreign.get("error", "")).lower()


def test_openssl_s_server_and_s_client_agree(issued, tmp_path):
    server, client = issued[("rsa-2048", "server")], issued[("rsa-2048", "client")]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", server / "cert.pem", "-cert_chain", server / "chain.pem",
                             "-key", server / "key.pem", "-CAfile", server / "ca.pem", "-Verify", "2",
                             "-verify_return_error", "-naccept", "3", "-www"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_port(port)
        ok = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", client / "ca.pem",
                             "-cert", client / "cert.pem", "-key", client / "key.pem", "-cert_chain", client / "chain.pem",
                             "-verify_return_error", "-servername", "srv.example.com", "-verify_hostname", "srv.example.com",
                             "-ign_eof"], input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=20)
        assert b"Verify return code: 0 (ok)" in ok.stdout and b"HTTP/1.0 200 ok" in ok.stdout
        foreign = issued[("ec-p256", "client")]
        refused = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", client / "ca.pem",
                                  "-cert", foreign / "cert.pem", "-key", foreign / "key.pem", "-cert_chain",
                                  foreign / "chain.pem", "-ign_eof"], input=b"GET / HTTP/1.0\r\n\r\n",
                                 capture_output=True, timeout=20)
        assert b"HTTP/1.0 200 ok" not in refused.stdout
        assert b"alert unknown ca" in refused.stderr
    finally:
        proc.kill()
        proc.wait()


def _wait_port(port: int) -> None:
    import time
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def bundles(issued, tmp_path_factory):
    from mtlskit.cli.app import main
    out = tmp_path_factory.mktemp("p12")
    password = out / "pw"
    password.write_text("p12-secret\n")
    password.chmod(0o600)
    client = issued[("ec-p256", "client")]
    for profile in ("modern", "legacy"):
        assert main(["export", "p12", "--cert", str(client / "cert.pem"), "--key", str(client / "key.pem"),
                     "--chain", str(client / "chain.pem"), "--profile", profile, "--password-file",
                     str(password), "--out", str(out / f"{profile}.p12")]) == 0
    return out


@pytest.mark.parametrize("profile,algorithm,mac", [("modern", b"PBES2, PBKDF2, AES-256-CBC", b"MAC: sha256"),
                                                   ("legacy", b"pbeWithSHA1And3-KeyTripleDES-CBC", b"MAC: sha1")])
def test_pkcs12_opens_in_openssl_with_the_right_algorithms(bundles, profile, algorithm, mac):
    info = openssl("pkcs12", "-in", bundles / f"{profile}.p12", "-passin", "pass:p12-secret", "-info",
                   "-noout", *(["-legacy"] if profile == "legacy" else []))
    assert info.returncode == 0, info.stderr
    assert algorithm in info.stderr + info.stdout and mac in info.stderr + info.stdout
    if profile == "legacy":
        assert b"PBES2" not in info.stderr + info.stdout
    wrong = openssl("pkcs12", "-in", bundles / f"{profile}.p12", "-passin", "pass:wrong", "-noout")
    assert wrong.returncode != 0


@pytest.mark.skipif(shutil.which("keytool") is None, reason="Java keytool not installed")
@pytest.mark.parametrize("profile", ["modern", "legacy"])
def test_pkcs12_opens_in_java_keytool(bundles, profile):
    listed = subprocess.run(["keytool", "-list", "-v", "-keystore", str(bundles / f"{profile}.p12"),
                             "-storetype", "PKCS12", "-storepass", "p12-secret"], capture_output=True, timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert b"PrivateKeyEntry" in listed.stdout and b"CN=alice" in listed.stdout
    assert b"Certificate chain length: 2" in listed.stdout
    wrong = subprocess.run(["keytool", "-list", "-keystore", str(bundles / f"{profile}.p12"),
                            "-storetype", "PKCS12", "-storepass", "not-it"], capture_output=True, timeout=60)
    assert wrong.returncode != 0
