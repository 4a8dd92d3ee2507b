"""`mtlskit serve` refusals, in-process: every one a single line and the right exit code."""

from __future__ import annotations

import socket

from mtlskit.cli.app import main


def test_serve_without_a_ca_is_not_found(tmp_path, capsys):
    assert main(["--home", str(tmp_path / "empty"), "serve", "--port", "0"]) == 3
    err = capsys.readouterr().err
    assert "error: no CA in" in err and "mtlskit init" in err


def test_serve_on_a_busy_port_is_a_usage_error(tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--no-passphrase"]) == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        capsys.readouterr()
        assert main(["--home", str(home), "serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot listen on 127.0.0.1:{port}" in err
    assert "hint: pick another --port" in err
    assert (home / "ocsp" / "intermediate.pem").exists()  # responders were made before listening


def test_serve_rejects_bad_numbers(tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--no-passphrase"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "serve", "--workers", "0"]) == 2
    assert "error: --workers must be between 1 and 64" in capsys.readouterr().err
    assert main(["--home", str(home), "serve", "--ocsp-refresh-seconds", "-1"]) == 2
    assert "error: --ocsp-refresh-seconds must be 0 or more" in capsys.readouterr().err


def test_serve_with_a_wrong_passphrase_is_refused(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "right horse battery staple")
    assert main(["--home", str(home), "init"]) == 0
    monkeypatch.setenv("MTLSKIT_CA_PASSPHRASE", "wrong")
    capsys.readouterr()
    assert main(["--home", str(home), "serve", "--port", "0"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (home / "ocsp" / "intermediate.pem").exists()
