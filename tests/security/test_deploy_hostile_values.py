"""Hostile values in every option of `mtlskit deploy`, for each server (issue 10, door 2).

Each value is refused with exit 2 and a one-line error, and nothing is written: no target
directory, no certificate row, no deployment row. The corpus is every character a server
configuration gives a meaning to (statement and block ends, comments, quotes, escapes,
variables of nginx, Apache's ``${VAR}`` and ``%{...}``, HAProxy's ``"${VAR}"``), line
breaks, NUL, spaces, look-alike Unicode, the empty value and the overlong one.
"""

from __future__ import annotations

import pytest

from mtlskit.config import load_settings
from mtlskit.deploy.records import list_deployments
from mtlskit.service import Service
from tests.conftest import _init_home

SERVERS = ("nginx", "apache", "haproxy")

FRAGMENTS = [
    "\n", "\r", "\r\n", "\x00", "\t", "\x1b", "\x7f", ";", "{", "}", "#", '"', "'", "\\", "`", "$", "${X}",
    "$host", "%{X}", "%{ENV:X}", " ", "|", "<", ">", "&", "(", ")", "*", "?", "[", "]", "!",
    "\u0430",            # Cyrillic a, looks like a Latin one
    "\uff0e",            # fullwidth full stop
    "\u200b",            # zero-width space
    "\u00a0",            # no-break space
    "\u2028",            # line separator
    "\n    bind :9999",  # a second listener (HAProxy: plain HTTP, no client certificate)
    ";\n    ssl_verify_client off;",
    "\n    SSLVerifyClient none",
]


# Fragments that are ordinary syntax in the middle of an option's value.
INNER_SYNTAX = {"--reload": {" "}}     # a command line: words one space apart


def _variants(option: str, valid: str) -> list[str]:
    """The fragments after, before and in the middle of a valid value, plus the empty and
    the overlong value."""
    middle = len(valid) // 2
    values = ["", valid + "x" * 5000, valid + "\n"]
    for fragment in FRAGMENTS:
        values += [valid + fragment, fragment + valid]
        if fragment not in INNER_SYNTAX.get(option, ()):
            values.append(valid[:middle] + fragment + valid[middle:])
    return list(dict.fromkeys(v for v in values if v != valid))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = _init_home(tmp_path_factory.mktemp("hostile") / "home")
    from mtlskit.cli.app import main
    assert main(["--home", str(home), "crl"]) == 0
    return home


@pytest.fixture(scope="module")
def cert_dir(home, tmp_path_factory):
    """A server certificate issued by `mtlskit issue server`, for the --cert-dir baseline."""
    from mtlskit.cli.app import main
    out = tmp_path_factory.mktemp("issued") / "svc"
    assert main(["--home", str(home), "issue", "server", "given.example.com", "--out", str(out)]) == 0
    return out


def _valid_options(server: str, base, cert_dir, passphrase) -> dict[str, list[str]]:
    """A complete, valid `deploy` command line, option by option."""
    return {
        "--name": [f"svc-{server}.example.com"],
        "--dir": [str(base / "target")],
        "--listen": ["127.0.0.1:8443"],
        "--upstream": ["http://127.0.0.1:9000"],
        "--mode": ["optional"],
        "--require-on": ["/admin"],
        "--revocation": ["crl"],
        "--route": ["cn=admin:127.0.0.1:9001"],
        "--reload": ["true"],
        "--dns": [f"svc-{server}.example.com"],
        "--ip": ["127.0.0.1"],
        "--passphrase-file": [str(passphrase)],
    }


def _command(home, server: str, options: dict[str, list[str]]) -> list[str]:
    argv = ["--home", str(home), "deploy", server, "--standalone"]
    for option, values in options.items():
        for value in values:
            argv += [option, value]
    return argv


def _state(home) -> tuple[int, int]:
    service = Service.open(load_settings(home))
    return service.inventory.count(), len(list_deployments(service.inventory))


def _one_line_error(err: str) -> bool:
    lines = err.splitlines()
    return (1 <= len(lines) <= 2 and lines[0].startswith("error: ")
            and (len(lines) == 1 or lines[1].startswith("hint: ")) and "Traceback" not in err)


@pytest.fixture
def passphrase(tmp_path):
    path = tmp_path / "passphrase"
    path.write_text("unused\n")
    return path


@pytest.mark.parametrize("server", SERVERS)
def test_the_valid_command_line_is_accepted(home, tmp_path, cli, server, passphrase):
    """The baseline of every case below: without the hostile value, deploy succeeds."""
    result = cli(*_command(home, server, _valid_options(server, tmp_path, None, passphrase)))
    assert result.code == 0, result.err
    assert (tmp_path / "target").is_dir()


OPTIONS = ["--name", "--dir", "--listen", "--upstream", "--mode", "--require-on", "--revocation", "--route",
           "--reload", "--dns", "--ip", "--passphrase-file", "--cert-dir"]


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("server", SERVERS)
def test_hostile_value_is_refused_and_nothing_written(home, cert_dir, tmp_path, cli, monkeypatch, server,
                                                      option, passphrase):
    base = tmp_path / "base"
    base.mkdir()
    monkeypatch.chdir(base)                  # a relative --dir would land here
    options = _valid_options(server, base, cert_dir, passphrase)
    valid = str(cert_dir) if option == "--cert-dir" else options[option][0]
    before = _state(home)
    accepted, badly_refused = [], []
    for value in _variants(option, valid):
        result = cli(*_command(home, server, {**options, option: [value]}))
        if result.code == 0:
            accepted.append(value)
        elif result.code != 2 or not _one_line_error(result.err):
            badly_refused.append((value, result.code, result.err[-300:]))
    assert not accepted, f"{option} accepted {accepted!r}"
    assert not badly_refused, f"{option}: {badly_refused!r}"
    assert not list(base.iterdir()), sorted(p.name for p in base.iterdir())
    assert _state(home) == before            # no certificate row, no deployment row


def test_hostile_server_argument_is_refused(home, tmp_path, cli, passphrase):
    before = _state(home)
    for value in _variants("SERVER", "nginx"):
        argv = _command(home, "nginx", _valid_options("nginx", tmp_path, None, passphrase))
        argv[argv.index("nginx")] = value
        result = cli(*argv)
        assert result.code == 2 and _one_line_error(result.err), (value, result.err)
    assert not (tmp_path / "target").exists() and _state(home) == before
