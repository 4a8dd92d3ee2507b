"""check_response: a server is never handed a wrong, stale or forged answer to staple."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mtlskit.deploy.stapling import check_response
from mtlskit.errors import BadInput
from tests.support_deploy import build_pki

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki():
    return build_pki()


def _response(pki, leaf, signer=None, status=ocsp.OCSPCertStatus.GOOD, next_update=NOW + dt.timedelta(hours=1),
              certificates=()):
    signer = signer or pki.intermediate
    builder = ocsp.OCSPResponseBuilder().certificates(list(certificates)) if certificates else ocsp.OCSPResponseBuilder()
    builder = builder.add_response(
        cert=leaf.cert, issuer=pki.intermediate.cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=NOW - dt.timedelta(minutes=1), next_update=next_update,
        revocation_time=NOW - dt.timedelta(hours=1) if status is ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_a_current_good_answer_signed_by_the_issuer_is_accepted(pki):
    assert check_response(_response(pki, pki.server), pki.server.cert, pki.intermediate.cert, NOW) \
        == NOW + dt.timedelta(hours=1)


@pytest.mark.parametrize("case,message", [
    ("revoked", "says the server certificate is revoked"),
    ("other-certificate", "about another certificate"),
    ("forged", "signature does not verify"),
    ("signed-by-a-leaf-without-ocsp-eku", "signature does not verify"),
    ("stale", "not current"),
    ("garbage", "sent no OCSP response"),
    ("unauthorized", "answered unauthorized"),
])
def test_wrong_answers_are_refused(pki, case, message):
    der = {
        "revoked": lambda: _response(pki, pki.server, status=ocsp.OCSPCertStatus.REVOKED),
        "other-certificate": lambda: _response(pki, pki.clients["alice"]),
        "forged": lambda: _response(pki, pki.server, signer=pki.other_root),
        "signed-by-a-leaf-without-ocsp-eku": lambda: _response(
            pki, pki.server, signer=pki.clients["alice"], certificates=[pki.clients["alice"].cert]),
        "stale": lambda: _response(pki, pki.server, next_update=NOW - dt.timedelta(seconds=1)),
        "garbage": lambda: b"<html>not ocsp</html>",
        "unauthorized": lambda: ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER),
    }[case]()
    with pytest.raises(BadInput, match=message):
        check_response(der, pki.server.cert, pki.intermediate.cert, NOW)
