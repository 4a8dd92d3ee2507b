"""Test support for the identity headers: clients with awkward certificates, and the
three servers started side by side from their standalone configurations."""

from __future__ import annotations

import itertools
import os
import tempfile
import types
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mtlskit.deploy.bundle import deployment_files
from mtlskit.deploy.install import install
from mtlskit.deploy.options import DeployOptions, parse_listen, parse_upstream, validate
from mtlskit.issue.subject import SubjectOptions
from mtlskit.pki import names
from tests.support_deploy import CLIENT, Issued, ServerProcess, TestPki, build_pki, free_port, make_leaf, start_command

SERVERS = ("nginx", "apache", "haproxy")

# Client-sent names a server must never pass on (the issue's family, in the spellings
# the guides users migrate from use, mixed `-`/`_` and odd case).
FORGED_NAMES = (
    "X-Client-Verify", "X-Client-Subject-DN", "X-Client-CN", "X-Client-Role", "x-client-serial",
    "X-Client_Subject-DN", "X_Client-Verify", "X_Client_Cert", "x_client-fingerprint-sha256",
    "X-SSL-Client-Verify", "X-SSL-Client-DN", "X-SSL-Client-S-DN", "X_SSL_Client_Verify",
    "SSL-Client-Verify", "SSL_Client_Verify", "SSL-ClientCert", "X-TLS-Verified", "X_TLS-Client-DN",
    "X-Forwarded-Client-Cert", "X_Forwarded_Client-Cert",
)
FORGED = {name: "CN=admin,O=forged" if "DN" in name.upper() else "SUCCESS" for name in FORGED_NAMES}
KEPT = {"X-Forwarded-Client-Certs": "not-in-the-family", "X-Clientele": "kept", "X-SSLx": "kept"}

FAMILY_PREFIXES = ("x-client-", "x-ssl-", "ssl-client", "x-tls-")


def in_family(name: str) -> bool:
    """The issue's rule, written out independently of the code under test."""
    folded = name.lower().replace("_", "-")
    return folded.startswith(FAMILY_PREFIXES) or folded == "x-forwarded-client-cert"


def _subject(*rdns: list[tuple]) -> x509.Name:
    return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(oid, value) for oid, value in rdn])
                      for rdn in rdns])


def _whole_pem_lines(inter: Issued) -> Issued:
    """A leaf whose base64 fills its last PEM line exactly (DER length a multiple of 48):
    a server that wraps by hand must not add an empty line."""
    for pad in itertools.count():
        leaf = make_leaf(inter, "whole-lines", CLIENT, ou="x" * (1 + pad % 48))
        if len(leaf.cert.public_bytes(Encoding.DER)) % 48 == 0:
            return leaf
    raise AssertionError("unreachable")


def _trailing_zero(inter: Issued) -> Issued:
    """A leaf whose DER ends with a zero octet (its signature's last byte): mod_lua's
    r:base64_decode drops a trailing NUL, which once gave Apache a wrong fingerprint."""
    for attempt in itertools.count():
        leaf = make_leaf(inter, f"trailing-zero-{attempt}", CLIENT)
        if leaf.cert.public_bytes(Encoding.DER)[-1] == 0:
            return leaf
    raise AssertionError("unreachable")


def identity_pki() -> TestPki:
    """build_pki() plus clients whose serials and names the servers print differently by default."""
    pki = build_pki()
    inter = pki.intermediate
    zero_nibble = int.from_bytes(b"\x0a" + os.urandom(15), "big")
    pki.clients.update({
        "zero-nibble": make_leaf(inter, "zero-nibble", CLIENT, serial=zero_nibble),
        "whole-lines": _whole_pem_lines(inter),
        "trailing-zero": _trailing_zero(inter),
        "escaped": make_leaf(inter, "", CLIENT, subject=_subject(
            [(NameOID.ORGANIZATION_NAME, "mtlskit tests")],
            [(NameOID.COMMON_NAME, '#Doe, John +"q" <x>; =y\\ ')])),
        "utf8": make_leaf(inter, "", CLIENT, subject=_subject(
            [(NameOID.COUNTRY_NAME, "FR")],
            [(NameOID.ORGANIZATION_NAME, "Société Générale")],
            [(NameOID.ORGANIZATIONAL_UNIT_NAME, "Équipe Ω")],
            [(NameOID.COMMON_NAME, "zoë")])),
        "no-cn": make_leaf(inter, "", CLIENT, subject=_subject(
            [(NameOID.COUNTRY_NAME, "DE")], [(NameOID.STATE_OR_PROVINCE_NAME, "Berlin")],
            [(NameOID.ORGANIZATION_NAME, "mtlskit tests")], [(NameOID.ORGANIZATIONAL_UNIT_NAME, "robots")],
            [(NameOID.SERIAL_NUMBER, "42")], [(NameOID.EMAIL_ADDRESS, "robot@example.com")])),
        "two-cn": make_leaf(inter, "", CLIENT, subject=_subject(
            [(NameOID.ORGANIZATION_NAME, "mtlskit tests")], [(NameOID.COMMON_NAME, "outer")],
            [(NameOID.COMMON_NAME, "inner")], [(NameOID.ORGANIZATIONAL_UNIT_NAME, "x\\,CN=fake")])),
        # What `mtlskit issue --country ... --org-unit ...` writes: C, ST, L, O, OU, CN.
        "every-field": make_leaf(inter, "", CLIENT, subject=names.subject_name(
            "every-field", SubjectOptions.parse(country="de", state="Bayern", locality="München",
                                                org='Acme, "Inc" + Co', org_unit="Équipe Ω").attributes())),
        "multi": make_leaf(inter, "", CLIENT, subject=_subject(
            [(NameOID.ORGANIZATION_NAME, "mtlskit tests")],
            [(NameOID.COMMON_NAME, "multi"), (NameOID.USER_ID, "m-1")])),
    })
    return pki


def work_dir() -> Path:
    # Readable by the user Apache serves as (mod_lua loads its script in the child).
    base = Path(tempfile.mkdtemp(prefix="mtlskit-identity-"))
    base.chmod(0o755)
    return base


def start_standalone(server: str, mode: str, pki: TestPki, directory: Path, upstream_url: str,
                     stdout_name: str = "stdout.log"):
    port = free_port()
    options = validate(DeployOptions(
        server=server, name="localhost", directory=directory, listen=parse_listen(f"127.0.0.1:{port}"),
        upstream=parse_upstream(upstream_url), mode=mode, standalone=True))
    install(options.directory, deployment_files(
        options, pki.server.pem() + pki.intermediate.pem(), pki.server.key_pem(),
        pki.ca_certificates, pki.crls()))
    process = ServerProcess(start_command(server, options.directory), port, options.directory / stdout_name)
    return types.SimpleNamespace(server=server, port=port, options=options, process=process)
