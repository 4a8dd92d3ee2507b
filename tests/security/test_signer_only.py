"""The Signer is the only thing that signs: no module outside mtlskit/ca reaches a CA
private key. Checked twice: at run time, with a CA key that refuses to be used by
anything but mtlskit/ca (the way a PKCS#11 key would be a subclass whose sign() calls
the token), through issuance (fast and reference path), CRL publication and the OCSP
responder's certification; and in the source, where nothing outside ca/ names the
Signer's key."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from mtlskit.ca.authority import Authority, CaRequest, create_authority, random_serial
from mtlskit.ca.signer import Signer
from mtlskit.clock import FixedClock
from mtlskit.issue.issuer import IssueRequest, LeafTemplate, resolve_sans
from mtlskit.issue.profiles import CLIENT
from mtlskit.pki import names
from mtlskit.publish import crl as crlmod
from mtlskit.publish.responder import ResponderFiles, ensure_responder

NOW = dt.datetime(2026, 11, 22, 6, 0, 0, tzinfo=dt.timezone.utc)
SRC = Path(__file__).resolve().parents[2] / "src" / "mtlskit"
CA_PACKAGE = str(SRC / "ca") + "/"


def _first_mtlskit_caller() -> str:
    """The file of the innermost mtlskit frame on the stack (cryptography's builders
    and the test itself are not mtlskit)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = str(Path(frame.f_code.co_filename).resolve())
        if filename.startswith(str(SRC) + "/"):
            return filename
        frame = frame.f_back
    return "<no mtlskit frame>"


class GuardedKey(ec.EllipticCurvePrivateKey):
    """A CA key usable only from mtlskit/ca: every use from another mtlskit module
    is recorded (and fails), like a token that would only answer the Signer."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, misuse: list[str]) -> None:
        self._key = key
        self._misuse = misuse
        self.signatures = 0

    def _guard(self, what: str) -> None:
        caller = _first_mtlskit_caller()
        if not caller.startswith(CA_PACKAGE):
            self._misuse.append(f"{what} from {caller}")
            raise AssertionError(f"CA key {what} from {caller}")

    @property
    def curve(self):
        return self._key.curve

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def public_key(self):
        return self._key.public_key()  # public: anyone may have it

    def sign(self, data, signature_algorithm):
        self._guard("sign")
        self.signatures += 1
        return self._key.sign(data, signature_algorithm)

    def private_bytes(self, *args):
        self._guard("private_bytes")
        return self._key.private_bytes(*args)

    def private_numbers(self):
        self._guard("private_numbers")
        return self._key.private_numbers()

    def exchange(self, *args):
        self._guard("exchange")
        return self._key.exchange(*args)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


@pytest.fixture
def guarded():
    """An Authority whose CA keys are GuardedKeys; yields (authority, misuse list)."""
    plain = create_authority(CaRequest("Guarded CA"), NOW)
    misuse: list[str] = []

    def guard(signer: Signer) -> Signer:
        return Signer(signer.name, signer.certificate, GuardedKey(signer._key, misuse))

    root = guard(plain.root)
    yield Authority(root=root, issuing=guard(plain.issuing)), misuse
    assert misuse == []


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_issuance_signs_only_through_the_signer(guarded, monkeypatch, reference):
    authority, misuse = guarded
    monkeypatch.setenv("MTLSKIT_REFERENCE_ENCODERS", "1" if reference else "0")
    template = LeafTemplate(authority, CLIENT, "https://ca.example", NOW, 30)
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = template.sign_der(names.subject_name("device-1"), resolve_sans(IssueRequest(CLIENT, "device-1")),
                            public_key, random_serial())
    x509.load_der_x509_certificate(der).verify_directly_issued_by(authority.issuing.certificate)
    assert authority.issuing._key.signatures == 1 and misuse == []


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_crls_are_signed_only_through_the_signer(guarded, monkeypatch, reference):
    authority, misuse = guarded
    monkeypatch.setenv("MTLSKIT_REFERENCE_ENCODERS", "1" if reference else "0")
    entries = [crlmod.encode_entry(5, NOW, x509.ReasonFlags.key_compromise)]
    for signer in (authority.issuing, authority.root):
        crl = x509.load_der_x509_crl(crlmod.build_crl(signer, 3, NOW, NOW + dt.timedelta(days=1), entries))
        assert crl.is_signature_valid(signer.certificate.public_key())
    assert misuse == []


def test_the_ocsp_responder_is_certified_only_through_the_signer(guarded, tmp_path):
    authority, misuse = guarded
    responder, created = ensure_responder(ResponderFiles(tmp_path, "intermediate"), authority.issuing,
                                          FixedClock(NOW))
    assert created and authority.issuing._key.signatures == 1
    responder.certificate.verify_directly_issued_by(authority.issuing.certificate)
    assert misuse == []


def test_the_guard_catches_a_module_that_takes_the_key_out(guarded):
    """The guard itself: a module outside ca/ that signs with the raw key is caught."""
    authority, misuse = guarded
    from mtlskit.pki import signing  # outside ca/: what the old call sites did
    sign = signing.signer(authority.issuing._key, authority.issuing.hash_algorithm)
    with pytest.raises(AssertionError, match="CA key sign from .*pki/signing.py"):
        sign(b"tbs")
    misuse.clear()


def test_a_signer_has_no_public_key_attribute():
    signer = create_authority(CaRequest("Plain CA", intermediate=False), NOW).root
    assert not hasattr(signer, "private_key") and not hasattr(signer, "key")
    assert "_key" not in repr(signer)
    with pytest.raises(dataclasses.FrozenInstanceError):
        signer._key = None


def _key_reads_outside_ca() -> list[str]:
    """Every ``<expr>._key`` / ``<expr>.private_key`` in src/mtlskit outside ca/, except
    on the OCSP ResponderKey (the responder's own short-lived key, not a CA key)."""
    found = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "ca"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("_key", "private_key"):
                owner = ast.unparse(node.value)
                if node.attr == "private_key" and ("responder" in owner or owner == "self"
                                                   and path.name == "ocsp.py"):
                    continue
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_outside_ca_names_a_ca_key():
    assert _key_reads_outside_ca() == []


def _token_imports_outside_ca() -> list[str]:
    """Every import of python-pkcs11 or of mtlskit.ca.pkcs11 in src/mtlskit outside ca/
    (but its TokenConfig: where the keys are, which `init` takes from its options)."""
    found = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "ca"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "TokenConfig"]
                names += [node.module or ""] if node.module != "mtlskit.ca.pkcs11" else []
            if any(name == "pkcs11" or name.startswith(("pkcs11.", "mtlskit.ca.pkcs11")) for name in names):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_no_module_outside_ca_reaches_a_token():
    """Keys in a PKCS#11 token (issue 14) are reached only through ca/: the Signer, and
    the home that loads them."""
    assert _token_imports_outside_ca() == []
