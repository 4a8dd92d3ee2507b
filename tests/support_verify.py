"""Test support for verify/probe: a PKI built with mtlskit itself, and real Nginx,
Apache and HAProxy servers requiring client certificates, on 127.0.0.1 free ports,
under a temporary directory, stopped by PID.

The server configurations are written here on purpose, by hand and minimal, so the
probe is judged against servers configured the way their documentation says, not
against mtlskit's own config generator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mtlskit.cli.app import main

PEM = serialization.Encoding.PEM
ONE_DAY = dt.timedelta(days=1)


def run_cli(*args: str) -> None:
    rc = main([str(a) for a in args])
    assert rc == 0, f"mtlskit {' '.join(map(str, args))} exited {rc}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(PEM)


@dataclass
class ClientCase:
    """What the client presents in one probe case, and the code the probe must find."""

    name: str
    expected: str
    cert: Path | None = None
    key: Path | None = None


@dataclass
class TestPki:
    """Files of the test PKI; servers trust only ``root`` (with CRLs of root and intermediate)."""

    home: Path
    root: Path
    intermediate: Path
    server_fullchain: Path
    server_key: Path
    crl: Path  # both CRLs, PEM, concatenated
    cases: dict[str, ClientCase] = field(default_factory=dict)


def _load_key(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), None)


def _resign(template: Path, issuer_cert: Path, issuer_key: Path, out: Path, cn: str,
            not_before: dt.datetime, not_after: dt.datetime) -> None:
    """A client certificate like ``template`` (same profile extensions) with other dates.

    mtlskit refuses to issue certificates in the past or future, which is right; the
    test needs them, so it signs them itself with the CA key of the lab home.
    """
    tmpl = x509.load_pem_x509_certificate(template.read_bytes())
    ca = x509.load_pem_x509_certificate(issuer_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
               .issuer_name(ca.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    for ext in tmpl.extensions:
        if isinstance(ext.value, x509.SubjectKeyIdentifier):
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        else:
            builder = builder.add_extension(ext.value, ext.critical)
    cert = builder.sign(_load_key(issuer_key), hashes.SHA256())
    out.mkdir(parents=True, exist_ok=True)
    (out / "key.pem").write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    (out / "fullchain.pem").write_bytes(_pem(cert) + issuer_cert.read_bytes())


def build_pki(base: Path) -> TestPki:
    """The whole matrix of client cases, from one mtlskit home and one foreign one."""
    now = dt.datetime.now(dt.timezone.utc)
    home, other = base / "home", base / "other-home"
    run_cli("--home", home, "init", "--no-passphrase", "--name", "Probe Lab")
    run_cli("--home", other, "init", "--no-passphrase", "--name", "Elsewhere")
    ca = home / "ca"
    run_cli("--home", home, "issue", "server", "localhost", "--dns", "localhost", "--ip", "127.0.0.1",
            "--out", base / "server")
    for name in ("alice", "bob", "mallory"):
        run_cli("--home", home, "issue", "client", name, "--out", base / name)
    run_cli("--home", home, "issue", "server", "svc", "--dns", "svc.example.com", "--out", base / "svc")
    run_cli("--home", other, "issue", "client", "eve", "--out", base / "eve")
    inter_cert, inter_key = ca / "intermediate.pem", ca / "intermediate.key.pem"
    _resign(base / "alice/cert.pem", inter_cert, inter_key, base / "old", "old",
            now - 400 * ONE_DAY, now - 35 * ONE_DAY)
    _resign(base / "alice/cert.pem", inter_cert, inter_key, base / "early", "early",
            now + 10 * ONE_DAY, now + 375 * ONE_DAY)
    run_cli("--home", home, "revoke", "mallory", "--reason", "keyCompromise")
    crl = base / "crl.pem"  # the CRLs of root and intermediate, as the servers need them
    run_cli("--home", home, "crl", "--bundle", "--out", crl)
    pki = TestPki(home=home, root=ca / "root.pem", intermediate=inter_cert,
                  server_fullchain=base / "server/fullchain.pem", server_key=base / "server/key.pem", crl=crl)
    cases = [
        ClientCase("valid", "ok", base / "alice/fullchain.pem", base / "alice/key.pem"),
        ClientCase("no-certificate", "client-cert-missing"),
        ClientCase("other-ca", "client-cert-untrusted", base / "eve/fullchain.pem", base / "eve/key.pem"),
        ClientCase("expired", "client-cert-expired", base / "old/fullchain.pem", base / "old/key.pem"),
        ClientCase("not-yet-valid", "client-cert-not-yet-valid", base / "early/fullchain.pem", base / "early/key.pem"),
        ClientCase("revoked", "client-cert-revoked", base / "mallory/fullchain.pem", base / "mallory/key.pem"),
        ClientCase("server-only-eku", "client-cert-wrong-purpose", base / "svc/fullchain.pem", base / "svc/key.pem"),
        ClientCase("key-of-another", "client-key-mismatch", base / "alice/fullchain.pem", base / "bob/key.pem"),
        ClientCase("leaf-without-intermediate", "client-chain-incomplete", base / "alice/cert.pem",
                   base / "alice/key.pem"),
    ]
    pki.cases = {c.name: c for c in cases}
    return pki


# --- servers ---------------------------------------------------------------------------

@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen
    workdir: Path
    open_port: int | None = None  # a listener that does not ask for client certificates
    version: str = ""
    nocrl_port: int | None = None  # requires client certificates but checks no CRL

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.workdir.glob("*.log"))


def _wait_listening(port: int, process: subprocess.Popen, workdir: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            logs = "\n".join(p.read_text(errors="replace") for p in workdir.glob("*.log"))
            raise RuntimeError(f"server exited with {process.returncode}: {logs}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def stop(server: Server) -> None:
    """Stop by PID: SIGTERM the process we started, then SIGKILL if it lingers."""
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


_VERSIONS = {"1.3": ("TLSv1.3", "-all +TLSv1.3", "TLSv1.3"), "1.2": ("TLSv1.2", "-all +TLSv1.2", "TLSv1.2")}


def _nginx_conf(pki: TestPki, work: Path, port: int, open_port: int, nocrl_port: int, version: str) -> str:
    protocols = _VERSIONS[version][0]
    temp = " ".join(f"{d}_temp_path {work}/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # nginx docs: ssl_verify_client on + ssl_client_certificate (CA names are sent in the
    # CertificateRequest) + ssl_crl; failures are answered with an HTTP 400 page.
    return f"""
pid {work}/nginx.pid;
error_log {work}/error.log info;
worker_processes 1;
daemon off;
events {{ worker_connections 64; }}
http {{
  access_log off; {temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {pki.server_fullchain}; ssl_certificate_key {pki.server_key};
    ssl_protocols {protocols};
    ssl_client_certificate {pki.root}; ssl_verify_client on; ssl_verify_depth 2;
    ssl_crl {pki.crl};
    location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{open_port} ssl;
    ssl_certificate {pki.server_fullchain}; ssl_certificate_key {pki.server_key};
    ssl_protocols {protocols};
    location / {{ return 200 "hello\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{nocrl_port} ssl;
    ssl_certificate {pki.server_fullchain}; ssl_certificate_key {pki.server_key};
    ssl_protocols {protocols};
    ssl_client_certificate {pki.root}; ssl_verify_client on; ssl_verify_depth 2;
    location / {{ return 200 "hello\\n"; }}
  }}
}}
"""


def _apache_conf(pki: TestPki, work: Path, port: int, open_port: int, nocrl_port: int, version: str) -> str:
    mods = "/usr/lib/apache2/modules"
    protocols = _VERSIONS[version][1]
    # mod_ssl docs: SSLVerifyClient require, SSLCACertificateFile, SSLCARevocationFile
    # with SSLCARevocationCheck chain; refusals are TLS alerts.
    return f"""
ServerRoot {work}
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule socache_shmcb_module {mods}/mod_socache_shmcb.so
LoadModule ssl_module {mods}/mod_ssl.so
LoadModule status_module {mods}/mod_status.so
User nobody
Group nogroup
ServerName localhost
PidFile {work}/apache.pid
ErrorLog {work}/error.log
LogLevel warn ssl:info
DefaultRuntimeDir {work}
Mutex file:{work} default
# The worker runs as nobody and cannot read a 0700 temporary directory, so answer
# from a built-in handler rather than from files.
<Location />
  SetHandler server-status
  Require all granted
</Location>
SSLSessionCache none
Listen 127.0.0.1:{port}
Listen 127.0.0.1:{open_port}
Listen 127.0.0.1:{nocrl_port}
<VirtualHost 127.0.0.1:{port}>
  SSLEngine on
  SSLProtocol {protocols}
  SSLCertificateFile {pki.server_fullchain}
  SSLCertificateKeyFile {pki.server_key}
  SSLCACertificateFile {pki.root}
  SSLVerifyClient require
  SSLVerifyDepth 2
  SSLCARevocationFile {pki.crl}
  SSLCARevocationCheck chain
</VirtualHost>
<VirtualHost 127.0.0.1:{open_port}>
  SSLEngine on
  SSLProtocol {protocols}
  SSLCertificateFile {pki.server_fullchain}
  SSLCertificateKeyFile {pki.server_key}
</VirtualHost>
<VirtualHost 127.0.0.1:{nocrl_port}>
  SSLEngine on
  SSLProtocol {protocols}
  SSLCertificateFile {pki.server_fullchain}
  SSLCertificateKeyFile {pki.server_key}
  SSLCACertificateFile {pki.root}
  SSLVerifyClient require
  SSLVerifyDepth 2
</VirtualHost>
"""


def _haproxy_conf(pki: TestPki, work: Path, port: int, open_port: int, nocrl_port: int, version: str) -> str:
    bundle = work / "server-bundle.pem"  # HAProxy wants certificate, chain and key in one file
    bundle.write_bytes(pki.server_fullchain.read_bytes() + pki.server_key.read_bytes())
    ver = _VERSIONS[version][2]
    # HAProxy docs (bind options): ca-file, verify required, crl-file; ssl-min-ver/ssl-max-ver.
    return f"""
global
  pidfile {work}/haproxy.pid
  log stderr format short local0 info
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend mtls
  bind 127.0.0.1:{port} ssl crt {bundle} ca-file {pki.root} verify required crl-file {pki.crl} ssl-min-ver {ver} ssl-max-ver {ver}
  http-request return status 200 content-type text/plain string "hello"
frontend open
  bind 127.0.0.1:{open_port} ssl crt {bundle} ssl-min-ver {ver} ssl-max-ver {ver}
  http-request return status 200 content-type text/plain string "hello"
frontend nocrl
  bind 127.0.0.1:{nocrl_port} ssl crt {bundle} ca-file {pki.root} verify required ssl-min-ver {ver} ssl-max-ver {ver}
  http-request return status 200 content-type text/plain string "hello"
"""


def start_server(kind: str, pki: TestPki, workdir: Path, version: str) -> Server:
    """Start nginx, apache or haproxy in the foreground under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, open_port, nocrl_port = free_port(), free_port(), free_port()
    conf = workdir / f"{kind}.conf"
    if kind == "nginx":
        conf.write_text(_nginx_conf(pki, workdir, port, open_port, nocrl_port, version))
        argv = ["nginx", "-e", str(workdir / "error.log"), "-p", str(workdir), "-c", str(conf)]
    elif kind == "apache":
        conf.write_text(_apache_conf(pki, workdir, port, open_port, nocrl_port, version))
        argv = ["apache2", "-X", "-f", str(conf)]
    else:
        conf.write_text(_haproxy_conf(pki, workdir, port, open_port, nocrl_port, version))
        argv = ["haproxy", "-db", "-f", str(conf)]
    log = open(workdir / "stdout.log", "wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(kind, port, process, workdir, open_port, version, nocrl_port)
    try:
        _wait_listening(port, process, workdir)
        _wait_listening(open_port, process, workdir)
        _wait_listening(nocrl_port, process, workdir)
    except Exception:
        stop(server)
        raise
    return server


# --- a small in-memory PKI for unit tests (pure; no files) -------------------------------

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_ca(name: str, issuer: Issued | None = None, *, key_usage: bool = True,
            not_after: dt.datetime = NOW + 3650 * ONE_DAY) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - 365 * ONE_DAY).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   (issuer.key if issuer else key).public_key()), False))
    if key_usage:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False), True)
    return Issued(builder.sign((issuer.key if issuer else key), hashes.SHA256()), key)


def make_leaf(name: str, issuer: Issued, *, eku=("client",), dns: tuple[str, ...] = (),
              not_before: dt.datetime = NOW - 30 * ONE_DAY, not_after: dt.datetime = NOW + 300 * ONE_DAY,
              ocsp_url: str | None = None, crl_urls: tuple[str, ...] = ()) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    oids = {"client": x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, "server": x509.oid.ExtendedKeyUsageOID.SERVER_AUTH}
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                   encipher_only=False, decipher_only=False), True))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([oids[e] for e in eku]), False)
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), False)
    if ocsp_url:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), False)
    if crl_urls:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(u) for u in crl_urls], None, None, None)]), False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def make_crl(issuer: Issued, revoked: dict[int, x509.ReasonFlags | None] | None = None, *,
             last: dt.datetime = NOW - ONE_DAY, next_: dt.datetime = NOW + 6 * ONE_DAY,
             number: bool = True, signer=None) -> x509.CertificateRevocationList:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
               .last_update(last).next_update(next_))
    if number:
        builder = builder.add_extension(x509.CRLNumber(7), False)
    for serial, reason in (revoked or {}).items():
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - 2 * ONE_DAY)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(signer or issuer.key, hashes.SHA256())
