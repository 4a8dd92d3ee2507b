"""The ASGI app in-process: /ocsp (POST, GET), caching headers, revocation freshness, errors."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import OCSPExtensionOID

from mtlskit.pki import der
from mtlskit.publish.ocsp_source import OcspSource
from tests.support_ocsp import AsgiClient, make_ca, make_leaf, make_world, pkilint_findings, request_der, \
    revoke_in_inventory

OCSP_REQUEST = {"content-type": "application/ocsp-request"}


@pytest.fixture()
def world(tmp_path):
    return make_world(tmp_path, refresh_seconds=0)


@pytest.fixture()
def client(world):
    return AsgiClient(world.app)


def post(client, body: bytes):
    return client.post("/ocsp", content=body, headers=OCSP_REQUEST)


def ask(client, world, name: str, nonce: bytes | None = None) -> cocsp.OCSPResponse:
    response = post(client, request_der(world.leaves[name], world.ca.certificate, nonce))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    return cocsp.load_der_ocsp_response(response.content)


def test_good_certificate_gets_a_presigned_cacheable_response(client, world):
    response = post(client, request_der(world.leaves["alice"], world.ca.certificate))
    parsed = cocsp.load_der_ocsp_response(response.content)
    assert parsed.certificate_status is cocsp.OCSPCertStatus.GOOD
    assert parsed.certificates[0].extensions.get_extension_for_class(x509.OCSPNoCheck)
    max_age = int(response.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= (parsed.next_update_utc - parsed.this_update_utc).total_seconds()
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"] and response.headers["expires"]
    again = post(client, request_der(world.leaves["alice"], world.ca.certificate))
    assert again.content == response.content  # served from the cache, not re-signed
    assert pkilint_findings(response.content) == []


def test_get_form_answers_like_post(client, world):
    req = request_der(world.leaves["alice"], world.ca.certificate)
    posted = post(client, req)
    encoded = urllib.parse.quote(base64.b64encode(req).decode(), safe="")
    got = client.get(f"/ocsp/{encoded}")
    assert got.status_code == 200 and got.content == posted.content
    assert got.headers["etag"] == posted.headers["etag"]
    unencoded = client.get("/ocsp/" + base64.b64encode(req).decode())
    assert unencoded.content == posted.content


def test_if_none_match_gets_304(client, world):
    req = base64.b64encode(request_der(world.leaves["alice"], world.ca.certificate)).decode()
    first = client.get(f"/ocsp/{urllib.parse.quote(req, safe='')}")
    second = client.get(f"/ocsp/{urllib.parse.quote(req, safe='')}",
                        headers={"if-none-match": first.headers["etag"]})
    assert second.status_code == 304 and second.content == b""
    other = client.get(f"/ocsp/{urllib.parse.quote(req, safe='')}", headers={"if-none-match": '"nope"'})
    assert other.status_code == 200


def test_nonce_is_echoed_and_never_cached(client, world):
    first = post(client, request_der(world.leaves["alice"], world.ca.certificate, nonce=b"a" * 16))
    second = post(client, request_der(world.leaves["alice"], world.ca.certificate, nonce=b"b" * 16))
    assert first.headers["cache-control"] == "no-store" and "etag" not in first.headers
    for response, nonce in ((first, b"a" * 16), (second, b"b" * 16)):
        parsed = cocsp.load_der_ocsp_response(response.content)
        assert parsed.extensions.get_extension_for_oid(OCSPExtensionOID.NONCE).value.nonce == nonce
        assert parsed.certificate_status is cocsp.OCSPCertStatus.GOOD


def test_revocation_is_answered_on_the_next_request(client, world):
    assert ask(client, world, "bob").certificate_status is cocsp.OCSPCertStatus.GOOD
    assert ask(client, world, "bob", nonce=b"m" * 16).certificate_status is cocsp.OCSPCertStatus.GOOD
    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    revoke_in_inventory(world.inventory, "intermediate", world.leaves["bob"].serial_number, "key-compromise", at)
    revoked = ask(client, world, "bob")
    assert revoked.certificate_status is cocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert revoked.revocation_time_utc == at
    with_nonce = ask(client, world, "bob", nonce=b"n" * 16)
    assert with_nonce.certificate_status is cocsp.OCSPCertStatus.REVOKED
    assert ask(client, world, "alice").certificate_status is cocsp.OCSPCertStatus.GOOD
    assert pkilint_findings(post(client, request_der(world.leaves["bob"], world.ca.certificate)).content) == []


def test_other_processes_revocations_are_seen_within_the_refresh_interval(tmp_path):
    world = make_world(tmp_path, refresh_seconds=0)
    ticks = [1000.0]
    source = OcspSource(world.source.cas.values(), world.lookup, world.clock,
                        refresh_seconds=5, monotonic=lambda: ticks[0])
    req = request_der(world.leaves["carol"], world.ca.certificate)
    status = lambda: cocsp.load_der_ocsp_response(source.respond(req).body).certificate_status
    assert status() is cocsp.OCSPCertStatus.GOOD
    revoke_in_inventory(world.inventory, "intermediate", world.leaves["carol"].serial_number, "superseded",
                        dt.datetime.now(dt.timezone.utc))
    ticks[0] += 4.9
    assert status() is cocsp.OCSPCertStatus.GOOD  # within the configured bound: may be stale
    ticks[0] += 0.2
    assert status() is cocsp.OCSPCertStatus.REVOKED  # past it: never


def test_in_process_invalidation_is_immediate(tmp_path):
    world = make_world(tmp_path)
    source = OcspSource(world.source.cas.values(), world.lookup, world.clock,
                        refresh_seconds=3600, monotonic=lambda: 0.0)
    req = request_der(world.leaves["carol"], world.ca.certificate)
    assert cocsp.load_der_ocsp_response(source.respond(req).body).certificate_status is cocsp.OCSPCertStatus.GOOD
    serial = world.leaves["carol"].serial_number
    revoke_in_inventory(world.inventory, "intermediate", serial, "cessation-of-operation",
                        dt.datetime.now(dt.timezone.utc))
    source.invalidate([("intermediate", serial)])
    parsed = cocsp.load_der_ocsp_response(source.respond(req).body)
    assert parsed.certificate_status is cocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is x509.ReasonFlags.cessation_of_operation


def test_serial_never_issued_is_unknown(client, world):
    stranger, _ = make_leaf(world.ca, "stranger")  # signed by our CA key, never recorded
    response = post(client, request_der(stranger, world.ca.certificate))
    parsed = cocsp.load_der_ocsp_response(response.content)
    assert parsed.certificate_status is cocsp.OCSPCertStatus.UNKNOWN
    assert pkilint_findings(response.content) == []


def test_intermediate_is_answered_by_the_root_responder(client, world):
    response = post(client, request_der(world.ca.certificate, world.root.certificate, algorithm=hashes.SHA256()))
    parsed = cocsp.load_der_ocsp_response(response.content)
    assert parsed.certificate_status is cocsp.OCSPCertStatus.GOOD
    assert parsed.certificates[0].issuer == world.root.certificate.subject


def test_foreign_ca_is_unauthorized(client, world):
    foreign = make_ca("foreign", "Somebody Else's CA")
    leaf, _ = make_leaf(foreign, "mallory")
    parsed = cocsp.load_der_ocsp_response(post(client, request_der(leaf, foreign.certificate)).content)
    assert parsed.response_status is cocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x03\x02\x01\x05", b"\x30" * 40000])
def test_garbage_is_a_malformed_request_not_a_500(client, body):
    response = client.post("/ocsp", content=body, headers=OCSP_REQUEST)
    assert response.status_code == 200
    assert cocsp.load_der_ocsp_response(response.content).response_status \
        is cocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/ocsp/", "/ocsp/%%%", "/ocsp/bm90IGRlcg==", "/ocsp/@@@@"])
def test_garbage_get_is_a_malformed_request(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert cocsp.load_der_ocsp_response(response.content).response_status \
        is cocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_several_certificates_in_one_request(client, world):
    from mtlskit.publish.ocsp import parse_request

    ids = [parse_request(request_der(world.leaves[n], world.ca.certificate)).cert_ids[0]
           for n in ("alice", "bob")]
    revoke_in_inventory(world.inventory, "intermediate", world.leaves["bob"].serial_number,
                        "affiliation-changed", dt.datetime.now(dt.timezone.utc))
    body = der.sequence(der.sequence(der.sequence(*(der.sequence(i.der) for i in ids))))
    response = post(client, body)
    singles = list(cocsp.load_der_ocsp_response(response.content).responses)
    assert [s.certificate_status for s in singles] == [cocsp.OCSPCertStatus.GOOD, cocsp.OCSPCertStatus.REVOKED]
    assert singles[1].revocation_reason is x509.ReasonFlags.affiliation_changed


def test_wrong_method_is_a_problem(client):
    response = client.put("/ocsp", content=b"x")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 405


def test_ca_certificates_are_served_and_unknown_cas_are_problems(client, world):
    response = client.get("/ca/intermediate.pem")
    assert response.status_code == 200
    assert x509.load_pem_x509_certificate(response.content) == world.ca.certificate
    missing = client.get("/ca/nope.pem")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no CA named 'nope'"
    assert "intermediate" in missing.json()["hint"]


def test_crl_routes_answer_problems_when_nothing_is_published(client):
    response = client.get("/crl/intermediate.crl")
    assert response.status_code == 404
    assert response.json()["code"] == "not-found"
    assert client.get("/crl/intermediate.txt").status_code == 404
    assert client.get("/nowhere").headers["content-type"] == "application/problem+json"


def test_healthz(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["cas"] == ["intermediate", "root"]
    assert set(body["ocsp_responders_valid_until"]) == {"intermediate", "root"}


def test_unreadable_inventory_gives_try_later_not_a_stale_answer(tmp_path, caplog):
    world = make_world(tmp_path)
    req = request_der(world.leaves["alice"], world.ca.certificate)
    assert cocsp.load_der_ocsp_response(world.source.respond(req).body).certificate_status \
        is cocsp.OCSPCertStatus.GOOD
    world.inventory.close()
    (tmp_path / "inventory.db").unlink()
    (tmp_path / "inventory.db").mkdir()  # now unopenable: sqlite cannot read a directory
    parsed = cocsp.load_der_ocsp_response(world.source.respond(req).body)
    assert parsed.response_status is cocsp.OCSPResponseStatus.TRY_LATER
    assert "answering tryLater: the inventory cannot be read" in caplog.text


def test_a_bug_in_the_source_is_an_internal_error_response(world, monkeypatch, caplog):
    def broken(_request):
        raise RuntimeError("boom")

    monkeypatch.setattr(world.source, "respond", broken)
    response = AsgiClient(world.app).post("/ocsp", content=b"x", headers=OCSP_REQUEST)
    assert response.status_code == 200
    assert cocsp.load_der_ocsp_response(response.content).response_status \
        is cocsp.OCSPResponseStatus.INTERNAL_ERROR
    assert "OCSP request failed" in caplog.text and "boom" in caplog.text


def test_one_request_for_two_cas_is_unauthorized(client, world):
    # One response has one signer, and each delegated responder speaks for its own CA only.
    from mtlskit.publish.ocsp import parse_request

    ids = [parse_request(request_der(world.leaves["alice"], world.ca.certificate)).cert_ids[0],
           parse_request(request_der(world.ca.certificate, world.root.certificate)).cert_ids[0]]
    body = der.sequence(der.sequence(der.sequence(*(der.sequence(i.der) for i in ids))))
    parsed = cocsp.load_der_ocsp_response(post(client, body).content)
    assert parsed.response_status is cocsp.OCSPResponseStatus.UNAUTHORIZED


def test_head_gets_the_headers_of_get(client, world):
    req = urllib.parse.quote(base64.b64encode(request_der(world.leaves["alice"], world.ca.certificate)).decode(),
                             safe="")
    got, head = client.get(f"/ocsp/{req}"), client.request("HEAD", f"/ocsp/{req}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-length"] == str(len(got.content))
