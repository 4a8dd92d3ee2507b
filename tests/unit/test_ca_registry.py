"""The CA registry: CA names by generation, the newest intermediate issues."""

from __future__ import annotations

import pytest

from mtlskit.ca.home import CaRegistry, generation_of, intermediate_name, is_ca_name


@pytest.mark.parametrize("name, generation", [
    ("intermediate", 1), ("intermediate-2", 2), ("intermediate-10", 10), ("intermediate-9999", 9999),
    ("intermediate-1", None), ("intermediate-02", None), ("intermediate-", None), ("root", None),
    ("intermediate-2\n", None), ("Intermediate", None), ("intermediate-2.key", None), ("../intermediate", None),
])
def test_generation_of(name, generation):
    assert generation_of(name) == generation
    assert is_ca_name(name) == (generation is not None or name == "root")


def test_names_round_trip():
    for generation in (1, 2, 3, 11):
        assert generation_of(intermediate_name(generation)) == generation


def test_the_newest_intermediate_issues_and_the_others_are_retired():
    registry = CaRegistry(("root", "intermediate", "intermediate-2", "intermediate-10"))
    assert registry.issuing == "intermediate-10"
    assert registry.retired == ("intermediate", "intermediate-2")
    assert registry.next_intermediate() == "intermediate-11"


def test_a_single_ca_home():
    registry = CaRegistry(("root",))
    assert registry.issuing == "root" and registry.retired == () and registry.intermediates == ()
    assert registry.next_intermediate() == "intermediate"


def test_a_deferred_key_is_read_once_when_first_used_and_then_signs_directly():
    import datetime as dt

    from mtlskit.ca.authority import CaRequest, create_authority
    from mtlskit.ca.signer import DeferredKey, Signer

    plain = create_authority(CaRequest("Deferred"), dt.datetime.now(dt.timezone.utc)).issuing
    reads = []

    def load():
        reads.append(1)
        return plain._key

    signer = Signer(plain.name, plain.certificate, DeferredKey(load, present=lambda: True))
    assert signer.key_present and not signer.key_loaded and reads == []
    assert signer.public_key() == plain.certificate.public_key() and reads == []
    wrapper = signer.sign_bytes
    assert wrapper(b"tbs") and signer.key_loaded and reads == [1]
    assert signer.sign_bytes is not wrapper      # the direct function now
    signer.sign_bytes(b"again")
    signer.hash_algorithm
    assert reads == [1]
