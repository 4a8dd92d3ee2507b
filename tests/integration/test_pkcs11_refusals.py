"""Issue 14, `init --pkcs11-*` refusals: each one line, exit 2, nothing written (no home,
no new object in the token); and a root whose key is in a token cannot be exported."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from tests.support_softhsm import PIN, start_softhsm

TOKEN = "refusals"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    hsm = start_softhsm(tmp_path_factory.mktemp("softhsm"), TOKEN)
    yield hsm
    hsm.close()


@pytest.fixture(scope="module")
def taken(hsm, tmp_path_factory):
    """A home whose keys (labels taken-root, taken-intermediate) are in the token."""
    from mtlskit.cli.app import main

    home = tmp_path_factory.mktemp("taken") / "home"
    assert main(["--home", str(home), "init", *hsm.init_args(TOKEN, "taken")]) == 0
    return home


def _refused(cli, hsm, home: Path, *args, message: str) -> str:
    before = hsm.objects(TOKEN)
    result = cli("--home", home, "init", *args)
    assert result.code == 2, result.out + result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.err
    assert "Traceback" not in result.err and PIN not in result.out + result.err
    assert not home.exists()
    assert hsm.objects(TOKEN) == before
    return errors[0]


def _args(hsm, **changes) -> list[str]:
    options = {"--pkcs11-module": str(hsm.module), "--pkcs11-token": TOKEN,
               "--pkcs11-pin-file": str(hsm.pin_file), "--pkcs11-key-prefix": "fresh"}
    options.update(changes)
    return [word for flag, value in options.items() if value is not None for word in (flag, value)]


def test_a_module_that_is_not_a_pkcs11_library_is_refused(hsm, cli, tmp_path):
    text = tmp_path / "module.so"
    text.write_text("not a library\n")
    _refused(cli, hsm, tmp_path / "h1", *_args(hsm, **{"--pkcs11-module": str(text)}),
             message="is not a PKCS#11 library")
    libc = ctypes.util.find_library("c")
    libc_path = next(Path(d) / libc for d in ("/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib",
                                              "/lib64", "/lib") if (Path(d) / libc).exists())
    _refused(cli, hsm, tmp_path / "h2", *_args(hsm, **{"--pkcs11-module": str(libc_path)}),
             message="is not a PKCS#11 library")
    _refused(cli, hsm, tmp_path / "h3", *_args(hsm, **{"--pkcs11-module": str(tmp_path / "absent.so")}),
             message="is not a file")


def test_a_token_label_that_does_not_exist_is_refused(hsm, cli, tmp_path):
    _refused(cli, hsm, tmp_path / "home", *_args(hsm, **{"--pkcs11-token": "no-such-token"}),
             message="no PKCS#11 token labelled 'no-such-token'")


def test_a_wrong_pin_is_refused_without_echoing_it(hsm, cli, tmp_path, taken):
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("wrong-pin-31337\n")
    wrong.chmod(0o600)
    line = _refused(cli, hsm, tmp_path / "home", *_args(hsm, **{"--pkcs11-pin-file": str(wrong)}),
                    message="wrong PIN for the PKCS#11 token 'refusals'")
    assert "wrong-pin-31337" not in line and str(wrong) in line
    # the home made with the good PIN still signs (this process logged in again with it)
    assert cli("--home", taken, "issue", "client", "after-wrong-pin", "--out", tmp_path / "c").code == 0


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_a_pin_file_readable_by_group_or_others_is_refused(hsm, cli, tmp_path, mode):
    loose = tmp_path / "pin"
    loose.write_text(PIN + "\n")
    loose.chmod(mode)
    _refused(cli, hsm, tmp_path / "home", *_args(hsm, **{"--pkcs11-pin-file": str(loose)}),
             message="group or others have access to it")


def test_a_token_that_already_holds_keys_of_these_labels_is_refused(hsm, cli, tmp_path, taken):
    _refused(cli, hsm, tmp_path / "home", *_args(hsm, **{"--pkcs11-key-prefix": "taken"}),
             message="already holds keys labelled taken-root, taken-intermediate")


def test_a_key_type_a_token_does_not_keep_here_is_refused(hsm, cli, tmp_path):
    _refused(cli, hsm, tmp_path / "home", "--key-type", "ed25519", *_args(hsm),
             message="--key-type ed25519 cannot be kept in a PKCS#11 token")


@pytest.mark.parametrize("drop", ["--pkcs11-token", "--pkcs11-pin-file", "--pkcs11-module"])
def test_the_three_options_go_together(hsm, cli, tmp_path, drop):
    _refused(cli, hsm, tmp_path / "home", *_args(hsm, **{drop: None}), message=f"{drop} missing")


@pytest.mark.parametrize("extra", [["--no-passphrase"], ["--passphrase-file", "/etc/hostname"]])
def test_a_passphrase_option_with_a_token_is_refused(hsm, cli, tmp_path, extra):
    _refused(cli, hsm, tmp_path / "home", *extra, *_args(hsm), message="cannot be used together")


def test_a_bad_key_prefix_is_refused(hsm, cli, tmp_path):
    _refused(cli, hsm, tmp_path / "home", *_args(hsm, **{"--pkcs11-key-prefix": "a b"}),
             message="--pkcs11-key-prefix")


def test_the_root_key_in_a_token_cannot_be_exported_or_replaced(hsm, cli, tmp_path, taken):
    before = sorted(path.name for path in (taken / "ca").iterdir())
    result = cli("--home", taken, "root", "export-key", "--out", tmp_path / "root.key")
    assert result.code == 2
    [line] = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert "PKCS#11 token 'refusals'" in line and "it cannot leave the token" in line
    assert not (tmp_path / "root.key").exists()
    stray = tmp_path / "stray.key"
    stray.write_text("-----BEGIN PRIVATE KEY-----\n")
    stray.chmod(0o600)
    result = cli("--home", taken, "root", "import-key", stray)
    assert result.code == 2 and "it cannot leave the token" in result.err
    assert sorted(path.name for path in (taken / "ca").iterdir()) == before


def test_a_home_whose_pin_file_changed_refuses_to_sign_in_one_line(hsm, cli, tmp_path):
    pin_file = tmp_path / "own-pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    home = tmp_path / "home"
    assert cli("--home", home, "init", *_args(hsm, **{"--pkcs11-pin-file": str(pin_file),
                                                       "--pkcs11-key-prefix": "later"})).code == 0
    pin_file.write_text("changed-pin-4242\n")
    result = cli("--home", home, "issue", "client", "x", "--out", tmp_path / "x")
    assert result.code == 2 and "wrong PIN for the PKCS#11 token" in result.err, result.err
    assert "changed-pin-4242" not in result.err and not (tmp_path / "x").exists()
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o644)
    result = cli("--home", home, "issue", "client", "x", "--out", tmp_path / "x")
    assert result.code == 2 and "group or others have access to it" in result.err, result.err
    pin_file.chmod(0o600)
    assert cli("--home", home, "issue", "client", "x", "--out", tmp_path / "x").code == 0


def test_a_wrong_pin_is_refused_even_while_this_process_is_logged_in(hsm, tmp_path):
    """PKCS#11 logs a whole process in: a second session opens without a PIN. A PIN file
    with another PIN must still be checked, never ride on the login already there."""
    from mtlskit.ca import pkcs11
    from mtlskit.errors import BadInput

    wrong = tmp_path / "wrong-pin"
    wrong.write_text("wrong-pin-5150\n")
    wrong.chmod(0o600)
    good = pkcs11.TokenConfig(hsm.module, TOKEN, hsm.pin_file)
    pkcs11.restart_libraries()
    first = pkcs11.TokenSession(good, PIN)
    first.session()                                   # this process is logged in
    assert pkcs11.open_token(good) is not first      # a second session, on that login
    with pytest.raises(BadInput, match="wrong PIN") as refused:
        pkcs11.open_token(pkcs11.TokenConfig(hsm.module, TOKEN, wrong))
    assert "wrong-pin-5150" not in str(refused.value)
    assert pkcs11.labels_in_use(pkcs11.open_token(good), ["taken-root"]) in ([], ["taken-root"])
