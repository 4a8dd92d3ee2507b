"""The transport-less answer of `mtlskit serve` against a real OCSP source and inventory:
a repeated request is answered from memory only while that is exactly what the source
would answer (same second, same pre-signed reply, nothing revoked or unreadable), and a
request differing from an earlier one only in its nonce is signed without being read
again, with what the full path would answer."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as cocsp

from mtlskit.api import ocsp_wire, server
from mtlskit.clock import FixedClock
from mtlskit.publish.ocsp_source import OcspSource
from tests.support_ocsp import make_world, request_der, revoke_in_inventory


def http_post(body: bytes) -> bytes:
    return (b"POST /ocsp HTTP/1.0\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


def status(wire: bytes) -> cocsp.OCSPResponse:
    return cocsp.load_der_ocsp_response(wire.split(b"\r\n\r\n", 1)[1])


@pytest.fixture()
def setup(tmp_path):
    world = make_world(tmp_path)
    clock = FixedClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    ticks = [0.0]
    source = OcspSource(world.source.cas.values(), world.lookup, clock, refresh_seconds=5,
                        monotonic=lambda: ticks[0])
    return world, clock, ticks, source


def run(source, clock, test):
    async def go():
        shared = server._Shared(app=None, source=source, clock=clock, server_address=("127.0.0.1", 1))
        return test(shared)
    return asyncio.run(go())


def test_a_repeated_request_is_answered_from_memory_within_the_second(setup, monkeypatch):
    world, clock, _ticks, source = setup
    data = http_post(request_der(world.leaves["alice"], world.ca.certificate))

    def test(shared):
        first = shared.wire.one_shot(data)
        monkeypatch.setattr(ocsp_wire, "simple_request", lambda *a: pytest.fail("read again"))
        assert shared.wire.one_shot(data) == first
        monkeypatch.undo()
        clock.advance(dt.timedelta(seconds=1))  # max-age and Date move on: built again
        later = shared.wire.one_shot(data)
        assert later != first and status(later).this_update_utc == status(first).this_update_utc
        assert b"max-age=%d," % (3600 - 1) in later and b"max-age=3600," in first
    run(source, clock, test)


def test_a_revocation_is_answered_on_the_next_request_even_from_memory(setup):
    world, clock, ticks, source = setup
    leaf = world.leaves["bob"]
    data = http_post(request_der(leaf, world.ca.certificate))

    def test(shared):
        assert status(shared.wire.one_shot(data)).certificate_status is cocsp.OCSPCertStatus.GOOD
        revoke_in_inventory(world.inventory, "intermediate", leaf.serial_number, "key-compromise", clock.now())
        source.invalidate([("intermediate", leaf.serial_number)])  # a revocation made through this process
        assert status(shared.wire.one_shot(data)).certificate_status is cocsp.OCSPCertStatus.REVOKED
    run(source, clock, test)


def test_another_process_revocation_reaches_the_memory_within_the_refresh_interval(setup):
    world, clock, ticks, source = setup
    leaf = world.leaves["carol"]
    data = http_post(request_der(leaf, world.ca.certificate))

    def test(shared):
        assert status(shared.wire.one_shot(data)).certificate_status is cocsp.OCSPCertStatus.GOOD
        revoke_in_inventory(world.inventory, "intermediate", leaf.serial_number, "superseded", clock.now())
        ticks[0] += 5.1  # past --ocsp-refresh-seconds: the change marker is read
        assert status(shared.wire.one_shot(data)).certificate_status is cocsp.OCSPCertStatus.REVOKED
    run(source, clock, test)


def test_an_unreadable_inventory_is_not_hidden_by_the_memory(setup, tmp_path):
    world, clock, ticks, source = setup
    data = http_post(request_der(world.leaves["alice"], world.ca.certificate))

    def test(shared):
        assert status(shared.wire.one_shot(data)).certificate_status is cocsp.OCSPCertStatus.GOOD
        world.inventory.close()
        (tmp_path / "inventory.db").unlink()
        (tmp_path / "inventory.db").mkdir()
        ticks[0] += 5.1
        assert status(shared.wire.one_shot(data)).response_status is cocsp.OCSPResponseStatus.TRY_LATER
    run(source, clock, test)


def test_nonce_and_conditional_requests_never_reach_the_pre_signed_memory(setup):
    world, clock, _ticks, source = setup
    nonce_request = http_post(request_der(world.leaves["alice"], world.ca.certificate, nonce=b"q" * 16))
    plain = request_der(world.leaves["alice"], world.ca.certificate)
    conditional = http_post(plain).replace(b"\r\n\r\n", b"\r\nIf-None-Match: \"nope\"\r\n\r\n", 1)

    def test(shared):
        shared.wire.one_shot(nonce_request)
        shared.wire.one_shot(conditional)
        assert shared.wire.presigned_memo == {}
        shared.wire.one_shot(http_post(plain))
        assert len(shared.wire.presigned_memo) == 1
    run(source, clock, test)


def nonce_post(world, name: str, nonce: bytes, keep_alive: bool = False) -> bytes:
    data = http_post(request_der(world.leaves[name], world.ca.certificate, nonce=nonce))
    return data.replace(b"HTTP/1.0\r\n", b"HTTP/1.0\r\nConnection: keep-alive\r\n", 1) if keep_alive else data


def parts(wire: bytes) -> tuple[bytes, cocsp.OCSPResponse]:
    head, body = wire.split(b"\r\n\r\n", 1)
    return head, cocsp.load_der_ocsp_response(body)


def test_a_request_differing_only_in_its_nonce_is_signed_without_being_read_again(setup, monkeypatch):
    world, clock, _ticks, source = setup

    def test(shared):
        first = shared.wire.one_shot(nonce_post(world, "alice", b"1" * 16))
        assert len(shared.wire.nonce_memo) == 1
        monkeypatch.setattr(ocsp_wire, "simple_request", lambda *a: pytest.fail("read again"))
        monkeypatch.setattr(source, "_respond", lambda *a: pytest.fail("parsed again"))
        second = shared.wire.one_shot(nonce_post(world, "alice", b"2" * 16))
        monkeypatch.undo()
        third = shared.wire.one_shot(nonce_post(world, "alice", b"2" * 16).replace(b"Type", b"type"))
        for wire, nonce in ((first, b"1" * 16), (second, b"2" * 16), (third, b"2" * 16)):
            head, response = parts(wire)
            assert response.certificate_status is cocsp.OCSPCertStatus.GOOD
            assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
            source.cas["intermediate"].responder.certificate.public_key().verify(
                response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
        # what the full path (third: another header spelling, so not in the memory) writes
        same_length = lambda wire: parts(wire)[0].replace(b"content-length: %d" % len(parts(wire)[1].public_bytes(
            serialization.Encoding.DER)), b"content-length: N")
        assert same_length(second) == same_length(third)
        assert parts(second)[1].tbs_response_bytes.replace(b"2" * 16, b"1" * 16) == parts(first)[1].tbs_response_bytes
    run(source, clock, test)


def test_a_revocation_reaches_the_nonce_memory_on_the_next_request(setup):
    world, clock, ticks, source = setup
    leaf = world.leaves["bob"]

    def test(shared):
        assert parts(shared.wire.one_shot(nonce_post(world, "bob", b"a" * 20)))[1].certificate_status \
            is cocsp.OCSPCertStatus.GOOD
        revoke_in_inventory(world.inventory, "intermediate", leaf.serial_number, "key-compromise", clock.now())
        source.invalidate([("intermediate", leaf.serial_number)])
        response = parts(shared.wire.one_shot(nonce_post(world, "bob", b"b" * 20)))[1]
        assert response.certificate_status is cocsp.OCSPCertStatus.REVOKED
        assert response.revocation_reason is x509.ReasonFlags.key_compromise
    run(source, clock, test)


def test_an_unreadable_inventory_is_not_hidden_by_the_nonce_memory(setup, tmp_path):
    world, clock, ticks, source = setup

    def test(shared):
        shared.wire.one_shot(nonce_post(world, "alice", b"a" * 16))
        assert shared.wire.nonce_memo
        world.inventory.close()
        (tmp_path / "inventory.db").unlink()
        (tmp_path / "inventory.db").mkdir()
        ticks[0] += 5.1
        response = parts(shared.wire.one_shot(nonce_post(world, "alice", b"b" * 16)))[1]
        assert response.response_status is cocsp.OCSPResponseStatus.TRY_LATER
    run(source, clock, test)


def test_the_nonce_memory_keeps_the_keep_alive_rule(setup):
    world, clock, _ticks, source = setup

    def test(shared):
        assert shared.wire.simple(nonce_post(world, "alice", b"a" * 16, keep_alive=True))[1] is True
        assert shared.wire.nonce_memo
        assert shared.wire.one_shot(nonce_post(world, "alice", b"b" * 16, keep_alive=True)) is None
        assert shared.wire.simple(nonce_post(world, "alice", b"c" * 16, keep_alive=True))[1] is True
    run(source, clock, test)


def test_only_requests_ending_with_their_nonce_are_remembered(setup):
    world, clock, _ticks, source = setup
    other_length = nonce_post(world, "alice", b"a" * 17)
    unknown_ca = http_post(request_der(world.leaves["alice"], world.leaves["bob"], nonce=b"a" * 16))

    def test(shared):
        shared.wire.one_shot(unknown_ca)  # unauthorized: not a shape the source signs for
        shared.wire.one_shot(http_post(b"garbage" + b"\x04" * 20))
        assert shared.wire.nonce_memo == {}
        shared.wire.one_shot(nonce_post(world, "alice", b"a" * 16))
        shared.wire.one_shot(other_length)  # another length: another shape
        assert len(shared.wire.nonce_memo) == 2
        assert parts(shared.wire.one_shot(other_length))[1].extensions.get_extension_for_class(
            x509.OCSPNonce).value.nonce == b"a" * 17
    run(source, clock, test)
