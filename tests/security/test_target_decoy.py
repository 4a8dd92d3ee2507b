"""A decoy NAME spelled like a victim's serial must never redirect `revoke` or `show`.

An inventory written before NAMEs of 8+ hex digits were refused can hold a certificate
whose NAME is another certificate's serial (a CSR chose that CN). Such a row is planted
here directly, as an old database would hold it. A bare argument that is both a NAME and
a serial is refused as ambiguous (CLI exit 2, API 409) with both candidates listed;
``serial:HEX`` and ``name:NAME`` each reach exactly the certificate they say.
"""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.x509 import ocsp as cocsp
from mtlskit.config import load_settings
from mtlskit.service import Service
from tests.integration.test_api_revoke import Pki, assert_problem
from tests.support_crl import cli, issue, make_home, serial_of


def plant_decoy_name(home, decoy_serial: int, name: str) -> None:
    """Rename one inventory row, as a database from before the NAME rule could hold it."""
    inventory = Service.open(load_settings(home)).inventory
    with inventory.transaction() as session:
        changed = session.execute("UPDATE certificates SET name = ? WHERE serial = ?",
                                  (name, format(decoy_serial, "x")))
        assert changed == 1


def revoked_serials(home) -> set[int]:
    path = home / "crl" / "intermediate.crl"
    return {entry.serial_number for entry in x509.load_der_x509_crl(path.read_bytes())} if path.exists() else set()


@pytest.fixture()
def decoy(tmp_path):
    """(home, victim serial, decoy serial): the decoy is NAMEd with the victim's serial."""
    home = make_home(tmp_path)
    victim = serial_of(issue(home, "client", "victim", tmp_path / "out"))
    mallory = serial_of(issue(home, "client", "mallory", tmp_path / "out"))
    plant_decoy_name(home, mallory, format(victim, "x"))
    return home, victim, mallory


@pytest.mark.parametrize("spelling", [str.lower, str.upper, lambda hex_: "00" + hex_])
def test_bare_serial_that_is_also_a_name_is_refused_and_revokes_nothing(tmp_path, capsys, spelling):
    home = make_home(tmp_path)
    victim = serial_of(issue(home, "client", "victim", tmp_path / "out"))
    mallory = serial_of(issue(home, "client", "mallory", tmp_path / "out"))
    decoy_name = spelling(format(victim, "x"))
    plant_decoy_name(home, mallory, decoy_name)
    capsys.readouterr()
    assert cli(home, "revoke", decoy_name) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "ambiguous" in lines[0]
    assert f"{victim:x}" in lines[0] and f"{mallory:x}" in lines[0]
    assert "Traceback" not in err
    assert revoked_serials(home) == set()
    shown = Service.open(load_settings(home)).inventory.by_serial(victim)
    assert [r.status for r in shown] == ["valid"]


def test_one_ambiguous_target_refuses_the_whole_batch(decoy, tmp_path, capsys):
    home, victim, _ = decoy
    listing = tmp_path / "leavers.txt"
    listing.write_text(f"victim\n{victim:x}\n")
    assert cli(home, "revoke", "--from", str(listing)) == 2
    assert cli(home, "revoke", "victim", f"{victim:x}") == 2
    assert "ambiguous" in capsys.readouterr().err
    assert revoked_serials(home) == set()


@pytest.mark.parametrize("spelling", [
    lambda hex_: hex_.upper(),                                      # names are case-sensitive
    lambda hex_: ":".join(hex_[i:i + 2] for i in range(0, len(hex_), 2)),
    lambda hex_: "000" + hex_,
])
def test_serial_spellings_that_are_no_name_reach_the_victim(decoy, spelling):
    home, victim, _ = decoy
    assert cli(home, "revoke", spelling(format(victim, "x"))) == 0
    assert revoked_serials(home) == {victim}


def test_serial_prefix_revokes_the_victim_and_name_prefix_the_decoy(decoy, capsys):
    home, victim, mallory = decoy
    assert cli(home, "revoke", f"serial:{victim:x}") == 0
    assert revoked_serials(home) == {victim}
    assert cli(home, "revoke", f"name:{victim:x}") == 0
    assert revoked_serials(home) == {victim, mallory}


def test_show_refuses_the_bare_spelling_and_follows_the_prefixes(decoy, capsys):
    home, victim, mallory = decoy
    capsys.readouterr()
    assert cli(home, "show", f"{victim:x}", "--json") == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and f"{mallory:x}" in err and f"{victim:x}" in err
    assert cli(home, "show", f"serial:{victim:x}", "--json") == 0
    assert [r["serial"] for r in json.loads(capsys.readouterr().out)] == [f"{victim:x}"]
    assert cli(home, "show", f"name:{victim:x}", "--json") == 0
    assert [r["serial"] for r in json.loads(capsys.readouterr().out)] == [f"{mallory:x}"]


def test_api_refuses_the_bare_spelling_and_follows_the_prefixes(tmp_path):
    pki = Pki(tmp_path)
    victim, mallory = pki.serial("alice"), pki.serial("bob")
    plant_decoy_name(pki.home, mallory, format(victim, "x"))

    body = assert_problem(pki.revoke({"targets": [f"{victim:x}"]}), 409, "ambiguous-target",
                          f"{victim:x}", f"{mallory:x}")
    assert "serial:" in body["hint"]
    assert pki.ocsp("alice").certificate_status is cocsp.OCSPCertStatus.GOOD
    assert pki.ocsp("bob").certificate_status is cocsp.OCSPCertStatus.GOOD
    assert_problem(pki.client.get(f"/api/v1/certificates/{victim:x}", headers=pki.auth()),
                   409, "ambiguous-target", f"{mallory:x}")

    shown = pki.client.get(f"/api/v1/certificates/serial:{victim:x}", headers=pki.auth())
    assert shown.status_code == 200 and [r["serial"] for r in shown.json()] == [f"{victim:x}"]
    response = pki.revoke({"targets": [f"serial:{victim:x}"], "reason": "key-compromise"})
    assert response.status_code == 201, response.text
    assert [r["serial"] for r in response.json()["revoked"]] == [f"{victim:x}"]
    assert pki.ocsp("alice").certificate_status is cocsp.OCSPCertStatus.REVOKED
    assert pki.ocsp("bob").certificate_status is cocsp.OCSPCertStatus.GOOD
