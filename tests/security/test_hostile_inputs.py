"""Inputs that never end, that are not files, or that others can read (issue 11, point 5):
each is refused with exit 2 and one line, at once, before anything is read or written."""

from __future__ import annotations

import os
import threading

import pytest

from mtlskit.fileio import MAX_INPUT, InputRefused, read_input

pytestmark = pytest.mark.security


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret"
    path.write_text("a long enough passphrase\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def issued(tmp_path, ca_home, cli):
    out = tmp_path / "alice"
    assert cli("--home", ca_home, "issue", "client", "alice-inputs", "--out", out).code == 0
    return out


def _no_hang(run):
    """Run ``run`` in a thread; a hang fails the test instead of blocking the suite."""
    result = {}

    def target():
        try:
            result["value"] = run()
        except BaseException as exc:  # handed to the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the command hung"
    if "error" in result:
        raise result["error"]
    return result["value"]


def hostile_files(fifo, tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as handle:
        handle.truncate(MAX_INPUT + 1)
    big.chmod(0o600)
    return {"fifo": (fifo, "not a regular file"), "zero": ("/dev/zero", "not a regular file"),
            "directory": (tmp_path, "not a regular file"), "big": (big, "larger than "),
            "missing": (tmp_path / "nope", "No such file")}


@pytest.mark.parametrize("kind", ["fifo", "zero", "directory", "big", "missing"])
def test_inspect_and_export_refuse_what_is_not_a_bounded_regular_file(kind, fifo, tmp_path, issued, cli, secret):
    path, why = hostile_files(fifo, tmp_path)[kind]
    commands = [("inspect", path),
                ("export", "p12", "--cert", path, "--key", issued / "key.pem", "--out", tmp_path / "a.p12"),
                ("export", "p12", "--cert", issued / "cert.pem", "--key", path, "--out", tmp_path / "b.p12"),
                ("export", "p12", "--cert", issued / "cert.pem", "--key", issued / "key.pem",
                 "--password-file", path, "--out", tmp_path / "c.p12")]
    for args in commands:
        result = _no_hang(lambda: cli(*args))
        assert result.code == 2, (args, result)
        assert result.err.startswith("error: cannot read ") and why in result.err, result.err
        assert "Traceback" not in result.err
    assert not any((tmp_path / name).exists() for name in ("a.p12", "b.p12", "c.p12", "c.p12.pass"))


@pytest.mark.parametrize("kind", ["fifo", "zero", "directory", "missing"])
def test_a_passphrase_file_that_never_ends_is_refused(kind, fifo, tmp_path, cli):
    path, why = hostile_files(fifo, tmp_path)[kind]
    result = _no_hang(lambda: cli("--home", tmp_path / "home", "init", "--passphrase-file", path))
    assert result.code == 2 and why in result.err, result.err
    assert not (tmp_path / "home" / "ca").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o622])
def test_a_passphrase_file_others_can_read_is_refused(mode, secret, tmp_path, cli):
    secret.chmod(mode)
    result = cli("--home", tmp_path / "home", "init", "--passphrase-file", secret)
    assert result.code == 2 and "group or others have access" in result.err and f"chmod 600 {secret}" in result.err
    assert not (tmp_path / "home" / "ca").exists()
    secret.chmod(0o600)
    assert cli("--home", tmp_path / "home", "init", "--passphrase-file", secret).code == 0


def test_a_secret_larger_than_4_kib_is_refused(secret, tmp_path, cli):
    secret.write_bytes(b"x" * 5000)
    result = cli("--home", tmp_path / "home", "init", "--passphrase-file", secret)
    assert result.code == 2 and "larger than 4096" in result.err


def test_read_input_never_opens_a_fifo_for_blocking_reads(fifo):
    with pytest.raises(InputRefused, match="not a regular file"):
        _no_hang(lambda: read_input(fifo))


def test_read_input_reads_a_regular_file_whole(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"a" * (MAX_INPUT - 1))
    assert read_input(path) == b"a" * (MAX_INPUT - 1)


def test_an_output_that_is_not_a_regular_file_is_refused_never_replaced(tmp_path):
    from mtlskit.fileio import NotRegularFile, write_atomic

    fifo_path = tmp_path / "out-fifo"
    os.mkfifo(fifo_path)
    for target in (fifo_path, tmp_path, "/dev/null"):
        with pytest.raises(NotRegularFile):
            write_atomic(target, b"data")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    real = tmp_path / "real.pem"
    real.write_bytes(b"old")
    link = tmp_path / "link.pem"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_crl_out_onto_a_device_is_refused(tmp_path, fresh_home, cli):
    fifo_path = tmp_path / "crl-fifo"
    os.mkfifo(fifo_path)
    result = _no_hang(lambda: cli("--home", fresh_home, "crl", "--out", fifo_path))
    assert result.code == 2 and "not a regular file" in result.err, result
    assert stat_is_fifo(fifo_path)


def stat_is_fifo(path) -> bool:
    import stat

    return stat.S_ISFIFO(os.stat(path).st_mode)


def _sparse(path, size: int):
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def _input_commands(home, issued, path):
    """Every command that reads a certificate, CSR, CRL, key or list file: (args, limit)."""
    from mtlskit.cli.common import MAX_LIST

    cert = issued / "cert.pem"
    return [
        (("--home", home, "sign", path, "--profile", "client", "--name", "fifo-csr"), MAX_INPUT),
        (("--home", home, "issue", "client", "--from", path, "--out", issued.parent / "batch"), MAX_LIST),
        (("--home", home, "revoke", "--from", path), MAX_LIST),
        (("--home", home, "verify", path), MAX_INPUT),
        (("--home", home, "verify", cert, "--ca", path), MAX_INPUT),
        (("--home", home, "verify", cert, "--chain", path), MAX_INPUT),
        (("--home", home, "verify", cert, "--crl", path), MAX_INPUT),
        (("--home", home, "probe", "127.0.0.1:9", "--cert", path, "--key", issued / "key.pem"), MAX_INPUT),
        (("--home", home, "probe", "127.0.0.1:9", "--cert", cert, "--key", path), MAX_INPUT),
        (("--home", home, "probe", "127.0.0.1:9", "--ca", path), MAX_INPUT),
    ]


@pytest.mark.parametrize("kind", ["fifo", "zero", "big"])
def test_every_input_file_is_a_bounded_regular_file(kind, fifo, tmp_path, fresh_home, cli):
    """sign CSR, issue/revoke --from, verify's files and probe's: refused at once, exit 2."""
    issued = tmp_path / "bob"
    assert cli("--home", fresh_home, "issue", "client", "bob-inputs", "--out", issued).code == 0
    before = cli("--home", fresh_home, "list", "--json").out
    for args, limit in _input_commands(fresh_home, issued, "PATH"):
        path = {"fifo": fifo, "zero": "/dev/zero", "big": tmp_path / f"big-{limit}"}[kind]
        if kind == "big" and not os.path.exists(path):
            _sparse(path, limit + 1)
        args = tuple(path if a == "PATH" else a for a in args)
        result = _no_hang(lambda: cli(*args))
        why = "larger than " if kind == "big" else "not a regular file"
        assert result.code == 2, (args, result)
        assert result.err.startswith("error: cannot read ") and why in result.err, (args, result.err)
        assert "Traceback" not in result.err
    assert cli("--home", fresh_home, "list", "--json").out == before     # nothing signed or revoked
    assert not (tmp_path / "batch").exists()


def test_list_files_may_exceed_the_4_mib_of_other_inputs(tmp_path, fresh_home, cli):
    names = tmp_path / "names"
    names.write_bytes(b"# padding\n" * (MAX_INPUT // 10 + 1) + b"one-of-many\n")
    result = cli("--home", fresh_home, "revoke", "--from", names)
    assert result.code == 3 and "one-of-many" in result.err, result


def test_a_list_file_that_is_not_utf8_is_refused(tmp_path, fresh_home, cli):
    names = tmp_path / "names"
    names.write_bytes(b"caf\xe9\n")
    result = cli("--home", fresh_home, "issue", "client", "--from", names, "--out", tmp_path / "x")
    assert result.code == 2 and "not UTF-8" in result.err


def test_deploy_cert_dir_files_are_bounded(tmp_path, fresh_home, cli):
    cert_dir = tmp_path / "issued"
    assert cli("--home", fresh_home, "issue", "server", "big.example.com", "--out", cert_dir).code == 0
    with open(cert_dir / "fullchain.pem", "ab") as handle:
        handle.truncate(MAX_INPUT + 1)
    result = _no_hang(lambda: cli("--home", fresh_home, "deploy", "nginx", "--name", "big.example.com",
                                  "--dir", tmp_path / "d", "--listen", "443", "--revocation", "none",
                                  "--cert-dir", cert_dir))
    assert result.code == 2 and "larger than" in result.err, result
    assert not (tmp_path / "d").exists()


def test_deploy_directories_are_never_world_writable_under_umask_000(tmp_path):
    from mtlskit.deploy.install import make_directory

    old = os.umask(0)
    try:
        created = make_directory(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    assert created and all(os.stat(d).st_mode & 0o777 == 0o755 for d in created)
