"""`mtlskit deploy` says where the logs that explain a refusal are."""

from __future__ import annotations


def _deploy(cli, home, server, directory, *extra):
    return cli("--home", home, "deploy", server, "--name", "api.example.com", "--dir", directory,
               "--listen", "127.0.0.1:8443", "--upstream", "http://127.0.0.1:8000", *extra)


def test_deploy_names_the_log_files(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "crl").code == 0
    standalone = _deploy(cli, fresh_home, "nginx", tmp_path / "n", "--standalone")
    assert standalone.code == 0, standalone.err
    assert f"logs: {tmp_path / 'n' / 'access.log'} (requests), {tmp_path / 'n' / 'error.log'} (refused handshakes)" \
        in standalone.out
    site = _deploy(cli, fresh_home, "apache", tmp_path / "a")
    assert "logs: /var/log/apache2/mtls-api_example_com-access.log (requests)" in site.out
    haproxy = _deploy(cli, fresh_home, "haproxy", tmp_path / "h", "--standalone")
    assert f"start: haproxy -f {tmp_path / 'h' / 'haproxy.cfg'} -db >>{tmp_path / 'h'}/haproxy.log 2>&1" in haproxy.out
    assert "logs: stdout of the foreground process" in haproxy.out
