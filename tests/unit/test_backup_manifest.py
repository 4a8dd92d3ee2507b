"""The backup manifest (pure): the member-name grammar, the modes restore gives, and the
refusals of a manifest that is not one this version reads."""

from __future__ import annotations

import json

import pytest

from mtlskit.backup.manifest import (MAX_MEMBERS, MEMBER_NAMES, Manifest, Member, mode_of, parse_manifest,
                                     size_limit)
from mtlskit.errors import BadInput

DIGEST = "ab" * 32


def manifest(**changes) -> dict:
    document = json.loads(Manifest(
        mtlskit_version="0.1.0", schema_revision="0005_service", created_at="2026-12-06T02:00:00Z",
        dialect="sqlite", inventory={"certificates": 2, "revoked": 0, "audit_events": 2},
        keys={"root": "in-archive"},
        members=(Member("ca/root.pem", 10, DIGEST), Member("inventory.db", 4096, DIGEST))).to_json())
    document.update(changes)
    return document


def test_round_trip():
    parsed = parse_manifest(json.dumps(manifest()).encode())
    assert parsed.database_member == "inventory.db" and parsed.member("ca/root.pem").size == 10
    assert parse_manifest(parsed.to_json()) == parsed


@pytest.mark.parametrize("name", ["ca/root.pem", "ca/root.key.pem", "ca/intermediate.pem",
                                  "ca/intermediate-2.key.pem", "ca/intermediate-9999.pem",
                                  "ca/root.pkcs11.json", "inventory.db", "inventory.pgdump", "mtlskit.toml"])
def test_allowed_names(name):
    assert MEMBER_NAMES.match(name)


@pytest.mark.parametrize("name", ["../x", "/ca/root.pem", "ca/../root.pem", "ca/intermediate-1.pem",
                                  "ca/intermediate-10000.pem", "ca/intermediate-02.pem", "ca/root.pem\n",
                                  "ca/root.key.pem.bak", "crl/root.crl", "api-token", "ca/", "", "inventory.db-wal",
                                  "ca\\root.pem", "ca/root.pkcs11.json.x"])
def test_refused_names(name):
    assert not MEMBER_NAMES.match(name)


def test_modes_and_limits_by_kind():
    assert mode_of("ca/root.pem") == 0o644
    assert mode_of("ca/root.key.pem") == mode_of("ca/root.pkcs11.json") == mode_of("mtlskit.toml") == 0o600
    assert mode_of("inventory.db") == 0o600
    assert size_limit("inventory.db") is None and size_limit("ca/root.pem") == 1024 * 1024


@pytest.mark.parametrize("changes, words", [
    ({"format": "tar"}, "not an mtlskit backup"),
    ({"format_version": 2}, "format version 2"),
    ({"format_version": True}, "format version"),
    ({"database": {"dialect": "mysql"}}, "unknown database dialect"),
    ({"members": [{"name": "ca/root.pem", "size": 1, "sha256": DIGEST}] * 2}, "twice"),
    ({"members": [{"name": "inventory.db", "size": 1, "sha256": DIGEST}]}, "no ca/root.pem"),
    ({"members": [{"name": "ca/root.pem", "size": -1, "sha256": DIGEST}]}, "size"),
    ({"members": [{"name": "ca/root.pem", "size": 1, "sha256": "AB" * 32}]}, "SHA-256"),
    ({"members": [{"name": f"ca/intermediate-{n + 2}.pem", "size": 1, "sha256": DIGEST}
                  for n in range(MAX_MEMBERS + 1)]}, "at most"),
    ({"keys": {"root": "somewhere"}}, "keys"),
    ({"created_at": 5}, "created_at"),
    ({"inventory": {"certificates": True, "revoked": 0, "audit_events": 2}}, "counts"),
    ({"inventory": {"certificates": 2, "revoked": 0}}, "counts"),
])
def test_refusals(changes, words):
    with pytest.raises(BadInput, match=words):
        parse_manifest(json.dumps(manifest(**changes)).encode())


def test_not_json():
    for data in (b"", b"\xff\xfe", b"[]", b"null"):
        with pytest.raises(BadInput):
            parse_manifest(data)


def test_every_header_is_one_block_even_past_8_gib():
    """A database copy past 8 GiB must not need an extended header: restore refuses them."""
    from mtlskit.backup.archive import canonical_header

    for size in (0, 8 * 1024 ** 3 - 1, 9 * 1024 ** 3, 2 ** 40):
        header = canonical_header("inventory.pgdump", size, 1_800_000_000)
        assert len(header) == 512 and header[156:157] == b"0"
