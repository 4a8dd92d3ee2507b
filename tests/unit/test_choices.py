"""Choice: the str-Enum base of CLI words (key types, PKCS#12 profiles)."""

from __future__ import annotations

import pytest

from mtlskit.errors import BadInput
from mtlskit.pki.keys import KeyType
from mtlskit.pki.pkcs12 import P12Profile


def test_parse_is_case_insensitive():
    assert KeyType.parse("EC-P384") is KeyType.EC_P384
    assert P12Profile.parse("Legacy") is P12Profile.LEGACY


def test_what_and_hint_are_not_members():
    assert [k.value for k in KeyType] == ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"]
    assert [p.value for p in P12Profile] == ["modern", "legacy"]


@pytest.mark.parametrize("choice, text, message, hint", [
    (KeyType, "rsa-1024", "unknown key type 'rsa-1024'",
     "choose one of: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519"),
    (P12Profile, "weird", "unknown PKCS#12 profile 'weird'", "choose modern or legacy"),
])
def test_unknown_word_names_the_valid_ones(choice, text, message, hint):
    with pytest.raises(BadInput) as caught:
        choice.parse(text)
    assert (caught.value.message, caught.value.hint) == (message, hint)
