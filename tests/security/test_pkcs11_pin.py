"""Issue 14: the PKCS#11 PIN never appears in argv, logs, child environments, exception
messages or the home. mtlskit runs as a real process here (its /proc entries are real):
with a wrong PIN (also under --debug) and with the good one, through init, batch issuance
in forked workers, revoke with a deployment whose reload command dumps what it sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support_softhsm import PIN, start_softhsm

SRC = Path(__file__).resolve().parents[2] / "src"
TOKEN = "pin-leaks"
WRONG = "wrong-pin-8c41e7"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    hsm = start_softhsm(tmp_path_factory.mktemp("softhsm"), TOKEN)
    yield hsm
    hsm.close()


def _mtlskit(hsm, home: Path, *args, global_options: tuple = ()) -> subprocess.CompletedProcess:
    env = {name: value for name, value in hsm.env().items() if not name.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run([sys.executable, "-m", "mtlskit", *global_options, "--home", str(home),
                           *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def _everything_under(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.rglob("*") if path.is_file())


@pytest.mark.parametrize("global_options", [(), ("--debug",)], ids=["plain", "debug"])
def test_a_wrong_pin_is_refused_and_never_echoed(hsm, tmp_path, global_options):
    wrong = tmp_path / "wrong"
    wrong.write_text(WRONG + "\n")
    wrong.chmod(0o600)
    home = tmp_path / "home"
    result = _mtlskit(hsm, home, "init", "--pkcs11-module", hsm.module, "--pkcs11-token", TOKEN,
                      "--pkcs11-pin-file", wrong, global_options=global_options)
    assert result.returncode == (1 if global_options else 2), result.stderr   # --debug: the traceback
    assert "wrong PIN for the PKCS#11 token" in result.stderr
    assert WRONG not in result.stdout + result.stderr and PIN not in result.stdout + result.stderr
    assert not home.exists()


def test_the_pin_reaches_no_argv_environment_log_or_file(hsm, tmp_path):
    home, seen = tmp_path / "home", tmp_path / "seen"
    outputs = []

    def run(*args) -> None:
        result = _mtlskit(hsm, home, *args)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr

    run("init", "--pkcs11-module", hsm.module, "--pkcs11-token", TOKEN, "--pkcs11-pin-file", hsm.pin_file,
        "--pkcs11-key-prefix", "leaks")
    names = tmp_path / "names.txt"
    names.write_text("".join(f"leak-{n}\n" for n in range(150)))
    run("issue", "client", "--from", names, "--out", tmp_path / "batch")       # forked workers log in
    # a deployment whose reload command records its own environment and its parent's
    # (mtlskit's) argv and environment, as the kernel shows them
    script = tmp_path / "record.sh"
    script.write_text(f"#!/bin/sh\nmkdir -p {seen}\ncat /proc/self/environ > {seen}/child-environ\n"
                      f"cat /proc/$PPID/cmdline > {seen}/parent-cmdline\n"
                      f"cat /proc/$PPID/environ > {seen}/parent-environ\n")
    script.chmod(0o755)
    run("deploy", "nginx", "--name", "leak.example.com", "--dir", tmp_path / "deploy",
        "--listen", "127.0.0.1:8443", "--reload", script)
    run("revoke", "leak-7")
    assert (seen / "child-environ").read_bytes().count(b"PATH=") >= 1        # the recorder ran
    assert b"mtlskit" in (seen / "parent-cmdline").read_bytes()             # it was mtlskit's
    for name in ("child-environ", "parent-cmdline", "parent-environ"):
        assert PIN.encode() not in (seen / name).read_bytes(), name
    for text in outputs:
        assert PIN not in text
    # the home (mtlskit.toml, the key references, the database and its audit log, journals)
    assert PIN.encode() not in _everything_under(home)
    assert str(hsm.pin_file).encode() in _everything_under(home / "ca")   # its path, recorded
    assert PIN.encode() not in _everything_under(tmp_path / "batch") + _everything_under(tmp_path / "deploy")


def test_the_audit_log_records_the_token_not_the_pin(hsm, tmp_path):
    import sqlite3

    home = tmp_path / "home"
    result = _mtlskit(hsm, home, "init", "--pkcs11-module", hsm.module, "--pkcs11-token", TOKEN,
                      "--pkcs11-pin-file", hsm.pin_file, "--pkcs11-key-prefix", "audit")
    assert result.returncode == 0, result.stderr
    assert _mtlskit(hsm, home, "issue", "client", "audited", "--out", tmp_path / "c").returncode == 0
    connection = sqlite3.connect(home / "inventory.db")
    try:
        rows = [" ".join(map(str, row)) for table in _tables(connection)
                for row in connection.execute(f'SELECT * FROM "{table}"')]
    finally:
        connection.close()
    assert rows and not any(PIN in row for row in rows)


def _tables(connection) -> list[str]:
    return [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def test_no_pin_in_this_process_environment_after_signing(hsm, tmp_path):
    """In-process: loading an HSM authority and signing puts nothing in os.environ."""
    from mtlskit.cli.app import main

    home = tmp_path / "home"
    before = dict(os.environ)
    assert main(["--home", str(home), "init", "--pkcs11-module", str(hsm.module), "--pkcs11-token", TOKEN,
                 "--pkcs11-pin-file", str(hsm.pin_file), "--pkcs11-key-prefix", "inproc"]) == 0
    assert main(["--home", str(home), "issue", "client", "x", "--out", str(tmp_path / "x")]) == 0
    assert dict(os.environ) == before
    assert not any(PIN in value for value in os.environ.values())
