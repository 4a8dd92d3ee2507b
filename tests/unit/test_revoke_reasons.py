"""Revocation reasons: CLI words, RFC 5280 codes, cryptography flags, refusal."""

import pytest
from cryptography import x509

from mtlskit.errors import BadInput
from mtlskit.publish.crl import REASON_CODES
from mtlskit.revoke.reasons import RevocationReason


def test_the_eight_words_of_the_issue():
    assert [r.value for r in RevocationReason] == [
        "unspecified", "key-compromise", "ca-compromise", "affiliation-changed", "superseded",
        "cessation-of-operation", "certificate-hold", "privilege-withdrawn"]


@pytest.mark.parametrize("reason", list(RevocationReason))
def test_flag_and_code_agree_with_rfc5280(reason):
    assert REASON_CODES[reason.x509_flag] == reason.code
    assert RevocationReason.from_flag(reason.x509_flag) is reason


@pytest.mark.parametrize("text, expected", [
    ("key-compromise", RevocationReason.KEY_COMPROMISE),
    ("KEY_COMPROMISE", RevocationReason.KEY_COMPROMISE),
    ("keyCompromise", RevocationReason.KEY_COMPROMISE),
    (" superseded ", RevocationReason.SUPERSEDED),
    ("cACompromise", RevocationReason.CA_COMPROMISE),
])
def test_parse_accepts_cli_and_rfc_spellings(text, expected):
    assert RevocationReason.parse(text) is expected


@pytest.mark.parametrize("text", ["stolen", "", "remove-from-crl", "aa-compromise"])
def test_parse_refuses_with_the_valid_words(text):
    with pytest.raises(BadInput) as caught:
        RevocationReason.parse(text)
    assert caught.value.exit_code == 2
    assert "unknown revocation reason" in caught.value.message
    assert "key-compromise" in caught.value.hint and "privilege-withdrawn" in caught.value.hint


def test_from_flag_refuses_flags_mtlskit_does_not_use():
    with pytest.raises(BadInput):
        RevocationReason.from_flag(x509.ReasonFlags.remove_from_crl)
