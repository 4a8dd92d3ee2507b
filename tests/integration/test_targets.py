"""serial:HEX and name:NAME in `mtlskit revoke`, `mtlskit show` and the REST API; bare
arguments that are only one kind work as before. (The decoy case: tests/security/test_target_decoy.py.)"""

from __future__ import annotations

import json

import pytest
from cryptography import x509

from tests.integration.test_api_revoke import Pki, assert_problem
from tests.support_crl import cli, issue, make_home, serial_of


@pytest.fixture()
def pki(tmp_path):
    home = make_home(tmp_path)
    out = tmp_path / "out"
    alice, bob = issue(home, "client", "alice", out), issue(home, "client", "bob", out)
    return home, out, serial_of(alice), serial_of(bob)


def revoked_serials(home) -> set[int]:
    path = home / "crl" / "intermediate.crl"
    return {entry.serial_number for entry in x509.load_der_x509_crl(path.read_bytes())} if path.exists() else set()


def colons(serial: int) -> str:
    digits = format(serial, "X")
    digits = "0" * (len(digits) % 2) + digits
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def test_revoke_by_prefixed_name_and_prefixed_serial(pki):
    home, _, alice, bob = pki
    assert cli(home, "revoke", "name:alice") == 0
    assert revoked_serials(home) == {alice}
    assert cli(home, "revoke", f"SERIAL:{colons(bob)}") == 0
    assert revoked_serials(home) == {alice, bob}


def test_revoke_from_file_with_prefixes(pki, tmp_path):
    home, _, alice, bob = pki
    listing = tmp_path / "leavers.txt"
    listing.write_text(f"name:alice\nserial:00{bob:x}\n")
    assert cli(home, "revoke", "--from", str(listing)) == 0
    assert revoked_serials(home) == {alice, bob}


def test_a_short_hex_name_without_such_a_serial_is_a_name_as_before(pki, capsys):
    home, out, _, _ = pki
    cafe = serial_of(issue(home, "client", "cafe", out))   # hex, but no certificate has serial 0xcafe
    assert cli(home, "revoke", "cafe") == 0
    assert cafe in revoked_serials(home)


def test_show_with_prefixes(pki, capsys):
    home, out, alice, _ = pki
    again = serial_of(issue(home, "client", "alice", out))
    capsys.readouterr()
    assert cli(home, "show", "name:alice", "--json") == 0
    # a NAME means its newest certificate
    assert [r["serial"] for r in json.loads(capsys.readouterr().out)] == [f"{again:x}"]
    assert cli(home, "show", f"serial:{colons(alice)}", "--json") == 0
    assert [r["serial"] for r in json.loads(capsys.readouterr().out)] == [f"{alice:x}"]


@pytest.mark.parametrize("command", ["revoke", "show"])
@pytest.mark.parametrize("target, code, message", [
    ("serial:zz", 2, "error: 'serial:zz' is not a serial"),
    ("serial:", 2, "error: 'serial:' is not a serial"),
    ("serial:" + "f" * 41, 2, "error: 'serial:" + "f" * 41 + "' is not a serial"),
    ("name:", 2, "error: 'name:' names no certificate"),
    ("serial:abcdef12", 3, "error: serial:abcdef12: no certificate with this serial in the inventory"),
    ("name:nobody", 3, "error: name:nobody: no certificate with this name in the inventory"),
    ("nobody", 3, "error: nobody: no certificate with this name or serial in the inventory"),
])
def test_refused_targets(pki, capsys, command, target, code, message):
    home = pki[0]
    capsys.readouterr()
    assert cli(home, command, target) == code
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(message) and "Traceback" not in err
    assert not (home / "crl" / "intermediate.crl").exists()


def test_api_prefixes_and_refusals(tmp_path):
    pki = Pki(tmp_path)
    alice, bob = pki.serial("alice"), pki.serial("bob")
    get = lambda target: pki.client.get(f"/api/v1/certificates/{target}", headers=pki.auth())  # noqa: E731

    assert [r["serial"] for r in get(f"serial:{colons(alice)}").json()] == [f"{alice:x}"]
    assert [r["name"] for r in get("name:bob").json()] == ["bob"]
    assert_problem(get("serial:zz"), 400, "bad-input", "is not a serial")
    assert_problem(get("name:nobody"), 404, "not-found", "no certificate with this name")
    assert_problem(pki.revoke({"targets": ["serial:zz"]}), 400, "bad-input", "is not a serial")
    assert_problem(pki.revoke({"targets": ["name:nobody"]}), 404, "not-found")
    assert_problem(pki.revoke({"targets": ["name:alice", "serial:abcdef12"]}), 404, "not-found",
                   "serial:abcdef12")
    assert pki.service.inventory.find("alice")[0].status == "valid"   # one bad target refuses the batch

    response = pki.revoke({"targets": ["name:alice", f"serial:{bob:X}"]})
    assert response.status_code == 201, response.text
    assert {r["serial"] for r in response.json()["revoked"]} == {f"{alice:x}", f"{bob:x}"}


def test_a_target_with_a_line_break_stays_on_one_line(tmp_path):
    pki = Pki(tmp_path)
    body = assert_problem(pki.revoke({"targets": ["nobody\nerror: forged"]}), 404, "not-found")
    assert "\n" not in body["detail"] and body["detail"].startswith("'nobody\\nerror: forged': no certificate")
