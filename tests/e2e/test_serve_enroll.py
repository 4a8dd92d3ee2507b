"""Enrollment and remote renewal against a real `mtlskit serve --tls-port` on 127.0.0.1:
the key stays on the host, the token works once, the root fingerprint is the trust anchor,
and each refusal is clear (problem+json on the wire, one `error:` line in the CLI)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import shutil
import subprocess
import sys

import pytest
from cryptography import x509

from mtlskit.clock import FixedClock
from mtlskit.errors import PolicyViolation
from mtlskit.lifecycle.remote import renew_remote
from tests.support_enroll import TlsServe, csr_pem, enroll_cli
from tests.support_ocsp import REPO, free_port, mtlskit_env, openssl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    server = TlsServe(tmp_path_factory.mktemp("enroll"))
    yield server
    server.stop()


@pytest.fixture
def enrolled(serve, tmp_path):
    """A client certificate enrolled over the TLS port: its directory."""
    name = f"host-{tmp_path.name[-12:].replace('_', '-').strip('-')}".lower()
    out = tmp_path / name
    result = enroll_cli(serve, serve.token(name, "--profile", "client"), out)
    assert result.returncode == 0, result.stderr.decode()
    return out


def sans_of(path) -> list[str]:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return [str(n.value) for n in certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]


def test_enroll_writes_the_bundle_of_issue_and_openssl_verifies_it(serve, tmp_path):
    token = serve.token("alice", "--profile", "client", "--email", "alice@example.com", "--ttl", "10m")
    out = tmp_path / "alice"
    result = enroll_cli(serve, token, out, fingerprint=":".join(
        serve.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper())  # colons and upper case
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(os.listdir(out)) == ["ca.pem", "cert.pem", "chain.pem", "fullchain.pem", "key.pem"]
    assert os.stat(out / "key.pem").st_mode & 0o777 == 0o600
    verified = openssl("verify", "-CAfile", str(out / "ca.pem"), "-untrusted", str(out / "chain.pem"),
                       "-purpose", "sslclient", str(out / "cert.pem"))
    assert verified.returncode == 0 and b"OK" in verified.stdout, verified.stderr
    assert "alice@example.com" in sans_of(out / "cert.pem")
    key_check = openssl("x509", "-in", str(out / "cert.pem"), "-noout", "-pubkey").stdout
    assert key_check == openssl("pkey", "-in", str(out / "key.pem"), "-pubout").stdout
    listed = serve.cli("token", "list", "--json")
    assert b'"state": "used"' in listed.stdout and token.encode() not in listed.stdout
    assert not any(token.encode() in p.read_bytes() for p in serve.home.rglob("*") if p.is_file())


def test_token_create_prints_the_token_alone_on_the_last_line(serve):
    result = serve.cli("token", "create", "lastline", "--profile", "server", "--dns", "lastline.example")
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0 and len(lines) >= 2 and " " not in lines[-1] and len(lines[-1]) >= 40
    assert serve.cli("token", "revoke", "lastline").returncode == 0
    code, body = serve.post("/api/v1/enroll", {"token": lines[-1], "csr": csr_pem()})
    assert code == 403 and body["code"] == "token-refused" and "expired" in body["detail"]


def test_a_wrong_fingerprint_is_refused_before_the_token_is_sent(serve, tmp_path):
    token = serve.token("carol", "--profile", "client")
    wrong = "ab" * 32
    result = enroll_cli(serve, token, tmp_path / "carol", fingerprint=wrong)
    err = result.stderr.decode()
    assert result.returncode == 4 and err.startswith("error: ") and "nothing was sent" in err, err
    assert not (tmp_path / "carol").exists()
    assert token not in err
    # the token was never sent: it still works
    assert enroll_cli(serve, token, tmp_path / "carol2").returncode == 0


def test_a_server_serving_the_right_root_with_another_certificate_gets_no_token(serve, tmp_path):
    """An impostor may copy the public root.pem; its own TLS certificate does not chain to it."""
    (tmp_path / "www" / "ca").mkdir(parents=True)
    shutil.copy(serve.home / "ca" / "root.pem", tmp_path / "www" / "ca" / "root.pem")
    assert openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                   "/CN=impostor", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "k.pem"),
                   "-out", str(tmp_path / "c.pem"), "-days", "1").returncode == 0
    port = free_port()
    impostor = subprocess.Popen(["openssl", "s_server", "-WWW", "-accept", f"127.0.0.1:{port}", "-cert",
                                 str(tmp_path / "c.pem"), "-key", str(tmp_path / "k.pem")],
                                cwd=tmp_path / "www", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        token = serve.token("dave", "--profile", "client")
        result = enroll_cli(serve, token, tmp_path / "dave", url=f"https://127.0.0.1:{port}")
    finally:
        impostor.terminate()
        seen = impostor.communicate(timeout=10)[0]
    err = result.stderr.decode()
    assert result.returncode == 4 and "does not chain to the trusted root" in err and "nothing was sent" in err, err
    assert token.encode() not in seen and b"/api/v1/enroll" not in seen
    assert enroll_cli(serve, token, tmp_path / "dave2").returncode == 0


def wait_for_port(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def test_a_token_works_once(serve, tmp_path):
    token = serve.token("erin", "--profile", "client")
    assert enroll_cli(serve, token, tmp_path / "first").returncode == 0
    again = enroll_cli(serve, token, tmp_path / "second")
    assert again.returncode == 4 and "already used" in again.stderr.decode()
    assert not (tmp_path / "second").exists()


def test_an_expired_and_an_unknown_token_are_refused(serve, tmp_path):
    expired = enroll_cli(serve, serve.expired_token("frank"), tmp_path / "frank")
    assert expired.returncode == 4 and "expired at" in expired.stderr.decode(), expired.stderr.decode()
    code, body = serve.post("/api/v1/enroll", {"token": "x" * 43, "csr": csr_pem()})
    assert code == 403 and body["code"] == "token-refused" and body["detail"] == "unknown enrollment token"


def test_a_csr_asking_for_more_names_is_refused_and_the_token_kept(serve):
    token = serve.token("web1", "--profile", "server", "--dns", "web1.example")
    code, body = serve.post("/api/v1/enroll", {"token": token, "csr": csr_pem("web1", ("web1.example", "evil.example"))})
    assert code == 403 and body["code"] == "names-not-allowed" and "DNS:evil.example" in body["detail"], body
    code, body = serve.post("/api/v1/enroll", {"token": token, "csr": csr_pem("root-of-all")})
    assert code == 403 and "CN='root-of-all'" in body["detail"]
    code, body = serve.post("/api/v1/enroll", {"token": token, "csr": csr_pem("web1", ("web1.example",))})
    assert code == 201 and body["name"] == "web1"
    assert {"web1.example"} == {n for n in sans_of_pem(body["certificate"])}


def sans_of_pem(pem: str) -> list[str]:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return [str(n.value) for n in certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]


def test_of_fifty_concurrent_uses_of_a_token_exactly_one_succeeds(serve):
    token = serve.token("racer", "--profile", "client")
    csrs = [csr_pem() for _ in range(50)]
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda csr: serve.post("/api/v1/enroll", {"token": token, "csr": csr}), csrs))
    codes = sorted(code for code, _ in results)
    assert codes.count(201) == 1 and codes.count(403) == 49, codes
    listed = serve.cli("list", "--json").stdout.decode()
    assert listed.count('"name": "racer"') == 1


def test_remote_renewal_writes_new_files_and_keeps_the_previous(serve, enrolled):
    old = x509.load_pem_x509_certificate((enrolled / "cert.pem").read_bytes())
    old_key = (enrolled / "key.pem").read_bytes()
    issued = renew_remote(serve.url, enrolled)
    new = x509.load_pem_x509_certificate((enrolled / "cert.pem").read_bytes())
    assert new.serial_number != old.serial_number and issued.serial == format(new.serial_number, "x")
    assert (enrolled / "cert.pem.prev").read_bytes() == old.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.PEM)
    assert (enrolled / "key.pem.prev").read_bytes() == old_key != (enrolled / "key.pem").read_bytes()
    assert os.stat(enrolled / "key.pem").st_mode & 0o777 == 0o600
    assert new.subject == old.subject
    shown = serve.cli("show", f"serial:{format(old.serial_number, 'x')}", "--json").stdout.decode()
    assert format(new.serial_number, "x") in shown or "superseded" in shown


def test_renewal_with_a_superseded_certificate_is_refused(serve, enrolled, tmp_path):
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("cert.pem", "key.pem", "ca.pem", "fullchain.pem"):
        shutil.copy2(enrolled / name, stale / name)
    renew_remote(serve.url, enrolled)
    with pytest.raises(PolicyViolation, match="already renewed"):
        renew_remote(serve.url, stale)


def test_renewal_with_a_revoked_certificate_is_refused_clearly(serve, enrolled):
    serial = format(x509.load_pem_x509_certificate((enrolled / "cert.pem").read_bytes()).serial_number, "x")
    assert serve.cli("revoke", f"serial:{serial}").returncode == 0
    result = subprocess.run([sys.executable, "-c", "import sys; from mtlskit.lifecycle.remote import renew_remote; "
                             "renew_remote(sys.argv[1], sys.argv[2])", serve.url, str(enrolled)],
                            capture_output=True, env=mtlskit_env(), cwd=REPO, timeout=60)
    assert result.returncode != 0 and b"is revoked" in result.stderr
    assert not (enrolled / "cert.pem.prev").exists()


def test_renewal_with_an_expired_certificate_is_refused_before_connecting(serve, enrolled):
    later = FixedClock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400))
    with pytest.raises(PolicyViolation, match="expired at .* cannot authenticate a renewal"):
        renew_remote(serve.url, enrolled, clock=later)
    assert not (enrolled / "cert.pem.prev").exists()


def test_renew_without_a_client_certificate_is_refused(serve):
    code, body = serve.post("/api/v1/renew", {"csr": csr_pem()})
    assert code == 403 and body["code"] == "not-authenticated", body


def test_a_server_certificate_renews_over_mtls_too(serve, tmp_path):
    out = tmp_path / "web2"
    assert serve.cli("issue", "server", "web2.example", "--out", str(out)).returncode == 0
    issued = renew_remote(serve.url, out)
    assert issued.name == "web2.example" and (out / "cert.pem.prev").exists()


def test_enrollment_is_not_served_on_the_plain_http_port(serve):
    import urllib.request
    import urllib.error

    request = urllib.request.Request(f"{serve.server.url}/api/v1/enroll", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_openssl_s_client_sees_the_chain_a_client_certificate_request_and_no_ticket(serve):
    result = openssl("s_client", "-connect", f"127.0.0.1:{serve.tls_port}", "-CAfile",
                     str(serve.home / "ca" / "root.pem"), "-verify_return_error", "-no_ign_eof", input=b"")
    text = result.stdout.decode()
    assert "Verify return code: 0 (ok)" in text and "CN = mtlskit serve" in text
    assert "CN = Enroll Test CA Intermediate" in text  # the chain is sent
    assert "Requested Signature Algorithms" in text  # a CertificateRequest was sent
    assert "TLS session ticket:" not in text
    for version in ("-tls1_2", "-tls1_3"):  # no resumption: every connection is verified again
        again = openssl("s_client", "-connect", f"127.0.0.1:{serve.tls_port}", "-reconnect", version, input=b"")
        assert again.stdout.count(b"\nNew, ") >= 2 and b"Reused, " not in again.stdout, again.stdout[-800:]
    old = openssl("s_client", "-connect", f"127.0.0.1:{serve.tls_port}", "-tls1_1", input=b"")
    assert old.returncode != 0


def test_serve_keeps_its_tls_key_private_and_records_its_certificate(serve):
    assert os.stat(serve.home / "tls" / "server.key.pem").st_mode & 0o777 == 0o600
    listed = serve.cli("list", "--json").stdout.decode()
    assert '"profile": "serve-tls"' in listed
    expiring = serve.cli("list", "--expiring", "60d", "--json").stdout.decode()
    assert '"serve-tls"' not in expiring  # serve renews it itself


def test_the_renew_command_renews_remotely_and_refuses_clearly(serve, enrolled):
    def renew(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mtlskit", "renew", *args], capture_output=True,
                              env=mtlskit_env(), cwd=REPO, timeout=60)

    result = renew("--ca-url", serve.url, "--cert-dir", str(enrolled), "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert b'"previous_serial"' in result.stdout and (enrolled / "cert.pem.prev").exists()
    serial = format(x509.load_pem_x509_certificate((enrolled / "cert.pem").read_bytes()).serial_number, "x")
    assert serve.cli("revoke", f"serial:{serial}").returncode == 0
    refused = renew("--ca-url", serve.url, "--cert-dir", str(enrolled))
    lines = refused.stderr.decode().splitlines()
    assert refused.returncode == 4 and lines[0].startswith("error: the CA refused (HTTP 403): ") and "revoked" in lines[0]
    usage = renew("--ca-url", serve.url)
    assert usage.returncode == 2 and b"--cert-dir" in usage.stderr
    mixed = renew("--ca-url", serve.url, "--cert-dir", str(enrolled), "--all")
    assert mixed.returncode == 2


def test_two_workers_share_the_tls_port_and_a_token_still_works_once(tmp_path):
    server = TlsServe(tmp_path, "--workers", "2")
    try:
        token = server.token("pair", "--profile", "client")
        csrs = [csr_pem() for _ in range(30)]
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            codes = sorted(code for code, _ in pool.map(
                lambda csr: server.post("/api/v1/enroll", {"token": token, "csr": csr}), csrs))
        assert codes.count(201) == 1 and codes.count(403) == 29, codes
        assert len(list((server.home / "tls").glob("server*.pem"))) == 2
        listed = server.cli("list", "--json").stdout.decode()
        assert listed.count('"profile": "serve-tls"') == 1  # one certificate for both workers
    finally:
        server.stop()


def test_an_expired_certificate_is_refused_by_the_tls_server_clearly(serve, tmp_path):
    """A host whose clock lags still cannot renew with an expired certificate: the TLS
    layer refuses it, and the CLI says so in one line."""
    from mtlskit.config import load_settings
    from mtlskit.issue.bundle import BundleOptions
    from mtlskit.issue.issuer import IssueRequest
    from mtlskit.issue.profiles import get_profile
    from mtlskit.issue.workflow import issue_batch
    from mtlskit.pki.keys import KeyType
    from mtlskit.service import Service

    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)
    service = Service.open(load_settings(serve.home), FixedClock(past))
    out = tmp_path / "old-host"
    issue_batch(service, service.authority(lambda: None), [IssueRequest(get_profile("client"), "old-host", days=1)],
                [out], KeyType.EC_P256, BundleOptions())
    lagging = FixedClock(past + dt.timedelta(hours=1))
    with pytest.raises(PolicyViolation, match="refused the client certificate during the TLS handshake: it has expired"):
        renew_remote(serve.url, out, clock=lagging)
    assert not (out / "cert.pem.prev").exists()
