"""`mtlskit deploy` in-process: files and modes, the inventory record, refusals, refresh."""

from __future__ import annotations

import json
import shutil
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.config import load_settings
from mtlskit.deploy.records import list_deployments
from mtlskit.deploy.bundle import haproxy_serial, load_crls
from mtlskit.deploy.refresh import refresh_deployments
from mtlskit.service import Service


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _service(home):
    return Service.open(load_settings(home))


def test_deploy_issues_server_certificate_writes_safe_files_and_records(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "crl").code == 0
    target = tmp_path / "nginx"
    result = cli("--home", fresh_home, "deploy", "nginx", "--name", "api.example.com", "--dir", target,
                 "--listen", "127.0.0.1:8443", "--upstream", "http://127.0.0.1:8000", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["certificate"]["issued"] is True
    assert _mode(target / "server.pem.key") == 0o600
    for name in ("server.pem", "client-ca.pem", "crl.pem", "mtls-server.conf"):
        assert _mode(target / name) == 0o644
    assert not list(target.glob(".*"))                       # no temp or scratch file left behind
    chain = x509.load_pem_x509_certificates((target / "server.pem").read_bytes())
    cas = _service(fresh_home).ca_certificates()
    assert chain[1:] == [cas["intermediate"]]                 # full chain: leaf + intermediate
    assert x509.load_pem_x509_certificates((target / "client-ca.pem").read_bytes()) == list(cas.values())
    crls = (target / "crl.pem").read_bytes().count(b"BEGIN X509 CRL")
    assert crls == 2                                          # root AND intermediate
    conf = (target / "mtls-server.conf").read_text()
    assert "ssl_verify_depth 2;" in conf and "ssl_verify_client on;" in conf
    [deployment] = list_deployments(_service(fresh_home).inventory)
    assert (deployment.server, deployment.name, deployment.directory) == ("nginx", "api.example.com", target)
    assert deployment.reload_command == "signal:HUP:nginx:/run/nginx.pid"
    listed = cli("--home", fresh_home, "show", "api.example.com")
    assert listed.code == 0 and "server" in listed.out
    events = [e["action"] for e in _service(fresh_home).inventory.events()]
    assert "deploy" in events and "issue" in events


def test_redeploy_reuses_the_valid_certificate_and_its_key(fresh_home, tmp_path, cli):
    args = ["--home", fresh_home, "deploy", "haproxy", "--name", "api.example.com", "--listen", ":8443",
            "--upstream", "127.0.0.1:8000", "--revocation", "none", "--json"]
    first = json.loads(cli(*args, "--dir", tmp_path / "a").out)
    again = json.loads(cli(*args, "--dir", tmp_path / "a").out)
    other = json.loads(cli(*args, "--dir", tmp_path / "b").out)     # found in the recorded deployment
    assert first["certificate"]["issued"] and not again["certificate"]["issued"]
    assert first["certificate"]["serial"] == again["certificate"]["serial"] == other["certificate"]["serial"]
    assert (tmp_path / "a" / "server.pem.key").read_bytes() == (tmp_path / "b" / "server.pem.key").read_bytes()
    assert len(list_deployments(_service(fresh_home).inventory)) == 2


def test_a_valid_certificate_is_found_where_issue_wrote_it(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "server", "web.example.com", "--out", tmp_path / "issued").code == 0
    found = cli("--home", fresh_home, "deploy", "nginx", "--name", "web.example.com", "--dir", tmp_path / "d",
                "--listen", "443", "--revocation", "none")
    assert found.code == 0 and "using server certificate web.example.com" in found.out, found.err
    assert (tmp_path / "d" / "server.pem.key").read_bytes() == (tmp_path / "issued" / "key.pem").read_bytes()


def test_valid_certificate_whose_key_is_elsewhere_is_refused(fresh_home, tmp_path, cli):
    assert cli("--home", fresh_home, "issue", "server", "web.example.com", "--out", tmp_path / "issued").code == 0
    args = ["--home", fresh_home, "deploy", "nginx", "--name", "web.example.com", "--dir", tmp_path / "d",
            "--listen", "443", "--revocation", "none"]
    (tmp_path / "issued").rename(tmp_path / "moved")        # no longer where it was recorded
    refused = cli(*args)
    assert refused.code == 2
    assert "has a valid server certificate 'web.example.com'" in refused.err and "--cert-dir" in refused.err
    used = cli(*args, "--cert-dir", tmp_path / "moved")
    assert used.code == 0, used.err
    assert "using server certificate web.example.com" in used.out
    assert (tmp_path / "d" / "server.pem.key").read_bytes() == (tmp_path / "moved" / "key.pem").read_bytes()


def test_deploy_on_a_fresh_ca_publishes_the_crls_it_needs_and_says_how_they_stay_fresh(fresh_home, tmp_path, cli):
    """Issue 10, door 7: the first deploy on a new CA failed until `mtlskit crl` was run,
    and nothing said that the CRL goes stale in 7 days."""
    result = cli("--home", fresh_home, "deploy", "apache", "--name", "a.example.com", "--dir", tmp_path / "x",
                 "--listen", "443")
    assert result.code == 0, result.err
    assert "published the CRL of intermediate, root" in result.out
    assert (tmp_path / "x" / "crl.pem").read_bytes().count(b"BEGIN X509 CRL") == 2
    published = {crl.public_bytes(serialization.Encoding.DER) for crl in load_crls((fresh_home / "crl" / "bundle.pem").read_bytes())}
    assert {crl.public_bytes(serialization.Encoding.DER) for crl in load_crls((tmp_path / "x" / "crl.pem").read_bytes())} == published
    assert "CRL: valid until " in result.out
    assert f"`mtlskit --home {fresh_home} serve`" in result.out
    assert f"`0 3 * * * mtlskit --home {fresh_home} crl >/dev/null`" in result.out
    assert "agent" not in result.out                        # no command that does not exist
    again = cli("--home", fresh_home, "deploy", "apache", "--name", "a.example.com", "--dir", tmp_path / "x",
                "--listen", "443")
    assert again.code == 0 and "published the CRL" not in again.out
    assert "reload: unchanged" in again.out


def test_deploy_without_crl_checking_says_nothing_about_crls(fresh_home, tmp_path, cli):
    result = cli("--home", fresh_home, "deploy", "nginx", "--name", "a.example.com", "--dir", tmp_path / "x",
                 "--listen", "443", "--revocation", "none")
    assert result.code == 0, result.err
    assert "CRL: valid until" not in result.out and "published the CRL" not in result.out
    assert not (fresh_home / "crl" / "bundle.pem").exists()


@pytest.mark.parametrize("server,extra,message", [
    ("haproxy", ["--revocation", "ocsp"], "HAProxy cannot check client certificates by OCSP"),
    ("nginx", ["--revocation", "ocsp"], "--revocation ocsp needs an OCSP responder URL"),
    ("nginx", ["--route", "san=x.example:127.0.0.1:9"], "nginx cannot route on san="),
    ("haproxy", ["--route", "san=x.example:127.0.0.1:9"], "haproxy cannot route on san="),
    ("nginx", ["--route", "cn=admin"], "is not KIND=VALUE:HOST:PORT"),
    ("nginx", ["--require-on", "/admin"], "--require-on only makes sense with --mode optional"),
    ("nginx", ["--mode", "optional", "--require-on", "admin"], "must be an absolute URL path"),
    ("nginx", ["--mode", "sometimes"], "--mode 'sometimes' is not one of"),
    ("iis", [], "server 'iis' is not one of: nginx, apache, haproxy"),
    ("nginx", ["--upstream", "ftp://127.0.0.1:21"], "is not http(s)://HOST:PORT"),
])
def test_refusals_are_one_line_usage_errors(ca_home, tmp_path, cli, server, extra, message):
    result = cli("--home", ca_home, "deploy", server, "--name", "r.example.com", "--dir", tmp_path / "r",
                 "--listen", "127.0.0.1:8443", "--revocation", "none", *extra)
    assert result.code == 2, result.out
    assert result.err.splitlines()[0].startswith("error: ")
    assert message in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "r").exists()


def test_bad_listen_is_refused(ca_home, tmp_path, cli):
    result = cli("--home", ca_home, "deploy", "nginx", "--name", "r.example.com", "--dir", tmp_path / "r",
                 "--listen", "127.0.0.1:99999")
    assert result.code == 2 and "port must be a number from 1 to 65535" in result.err


# --- refresh (the hook `mtlskit revoke` / `mtlskit crl` call) ------------------------------------

def _deploy(cli, home, directory, reload_command):
    result = cli("--home", home, "deploy", "nginx", "--name", "f.example.com", "--dir", directory,
                 "--listen", "127.0.0.1:8443", "--reload", reload_command)
    assert result.code == 0, result.err


def _crl(cli, home):
    result = cli("--home", home, "crl", "--bundle")
    assert result.code == 0, result.err
    return result.out.encode()


def _revoke_new_client(cli, home, tmp_path, name):
    """Issue a client NAME and revoke it with `mtlskit revoke`; returns (serial, CLI result)."""
    assert cli("--home", home, "issue", "client", name, "--out", tmp_path / name).code == 0
    serial = x509.load_pem_x509_certificate((tmp_path / name / "cert.pem").read_bytes()).serial_number
    return serial, cli("--home", home, "revoke", name)


def _revoked_in(path, serial) -> bool:
    return any(entry.serial_number == serial for crl in load_crls(path.read_bytes()) for entry in crl)


def test_revoke_rewrites_the_deployment_crl_and_runs_the_reload(fresh_home, tmp_path, cli):
    _crl(cli, fresh_home)
    marker = tmp_path / "reloaded"
    _deploy(cli, fresh_home, tmp_path / "d", f"touch {marker}")
    serial, revoked = _revoke_new_client(cli, fresh_home, tmp_path, "eve")
    assert revoked.code == 0, revoked.err
    assert f"deployment nginx {tmp_path / 'd'}: updated (ran 'touch {marker}')" in revoked.out
    assert _revoked_in(tmp_path / "d" / "crl.pem", serial)
    assert (tmp_path / "d" / "crl.pem").read_bytes() == (fresh_home / "crl" / "bundle.pem").read_bytes()
    assert marker.exists()
    assert any(e["action"] == "deploy-refresh" for e in _service(fresh_home).inventory.events())


def test_crl_refresh_reaches_the_deployments_too(fresh_home, tmp_path, cli):
    _crl(cli, fresh_home)
    _deploy(cli, fresh_home, tmp_path / "d", "true")
    bundle = _crl(cli, fresh_home)
    assert (tmp_path / "d" / "crl.pem").read_bytes() == bundle


def test_failed_reload_is_reported_and_the_new_crl_stays(fresh_home, tmp_path, cli):
    _crl(cli, fresh_home)
    _deploy(cli, fresh_home, tmp_path / "d", "false")
    serial, revoked = _revoke_new_client(cli, fresh_home, tmp_path, "eve")
    assert revoked.code == 0                                       # the revocation itself stands
    assert f"warning: deployment nginx {tmp_path / 'd'}: reload failed ('false' exited with 1" in revoked.err
    assert "restored" not in revoked.err
    assert _revoked_in(tmp_path / "d" / "crl.pem", serial)


def test_refresh_refuses_a_bundle_missing_a_ca(fresh_home, tmp_path, cli):
    _crl(cli, fresh_home)
    marker = tmp_path / "reloaded"
    _deploy(cli, fresh_home, tmp_path / "d", f"touch {marker}")
    marker.unlink()                                     # deploy reloaded what it wrote
    before = (tmp_path / "d" / "crl.pem").read_bytes()
    only_one = before[before.index(b"-----BEGIN X509 CRL", 1):]
    [result] = refresh_deployments(_service(fresh_home), only_one)
    assert result.status == "failed" and "has no CRL from" in result.message
    assert (tmp_path / "d" / "crl.pem").read_bytes() == before and not marker.exists()


def test_revoke_with_an_haproxy_that_is_not_running_writes_the_files(fresh_home, tmp_path, cli):
    _crl(cli, fresh_home)
    result = cli("--home", fresh_home, "deploy", "haproxy", "--name", "h.example.com", "--dir", tmp_path / "h",
                 "--listen", "127.0.0.1:8443", "--upstream", "127.0.0.1:8000", "--standalone")
    assert result.code == 0, result.err
    assert (tmp_path / "h" / "revoked-serials.lst").read_bytes() == b""
    serial, revoked = _revoke_new_client(cli, fresh_home, tmp_path, "eve")
    assert revoked.code == 0 and "warning" not in revoked.err
    assert f"deployment haproxy {tmp_path / 'h'}: not running (nothing answers on" in revoked.out
    assert _revoked_in(tmp_path / "h" / "crl.pem", serial)
    assert format(serial, "X") in (tmp_path / "h" / "revoked-serials.lst").read_text().upper()


def test_haproxy_revoke_with_a_command_rewrites_the_serial_list(fresh_home, tmp_path, cli):
    _crl(cli, fresh_home)
    result = cli("--home", fresh_home, "deploy", "haproxy", "--name", "h.example.com", "--dir", tmp_path / "h",
                 "--listen", "127.0.0.1:8443", "--upstream", "127.0.0.1:8000", "--reload", "true")
    assert result.code == 0, result.err
    first, _ = _revoke_new_client(cli, fresh_home, tmp_path, "eve")
    second, _ = _revoke_new_client(cli, fresh_home, tmp_path, "oscar")
    listed = (tmp_path / "h" / "revoked-serials.lst").read_text().split()
    assert listed == sorted(haproxy_serial(s) for s in (first, second))


def test_one_missing_deployment_does_not_stop_the_others(fresh_home, tmp_path, cli):
    _crl(cli, fresh_home)
    _deploy(cli, fresh_home, tmp_path / "gone", "true")
    _deploy(cli, fresh_home, tmp_path / "kept", "true")
    shutil.rmtree(tmp_path / "gone")
    serial, revoked = _revoke_new_client(cli, fresh_home, tmp_path, "eve")
    assert f"warning: deployment nginx {tmp_path / 'gone'}: failed" in revoked.err
    assert "no longer exists" in revoked.err
    assert not (tmp_path / "gone").exists()
    assert _revoked_in(tmp_path / "kept" / "crl.pem", serial)


def test_a_renewal_that_died_before_installing_is_renewed_again(fresh_home, tmp_path, cli, monkeypatch):
    """`deploy` renews a certificate it issued itself in memory: recorded, then installed.
    Killed in between, the successor's key is lost and the deployment still serves the
    superseded certificate; the next deploy must renew again, not leave it to expire."""
    import datetime as dt

    from mtlskit.clock import FixedClock
    from mtlskit.lifecycle.renew import build_successor, record_successors
    from mtlskit.pki.keys import KeyType, generate_private_key

    args = ["--home", fresh_home, "deploy", "nginx", "--name", "api.example.com", "--dir", tmp_path / "d",
            "--listen", "127.0.0.1:8443", "--upstream", "http://127.0.0.1:8000", "--revocation", "none"]
    assert cli(*args).code == 0
    service = _service(fresh_home)
    [served] = service.inventory.by_name("api.example.com")
    authority = service.authority(lambda: None)
    orphan = build_successor(service, authority, served, generate_private_key(KeyType.EC_P256).public_key(),
                             at=service.clock.now())
    record_successors(service, [(served, orphan)], service.clock.now())   # then the process died
    later = served.not_after - dt.timedelta(days=5)
    monkeypatch.setattr("mtlskit.cli.common.SystemClock", lambda: FixedClock(later))
    result = cli(*args)
    assert result.code == 0, result.err
    assert f"its successor {orphan.serial_hex} was never installed" in result.out
    leaf = x509.load_pem_x509_certificates((tmp_path / "d" / "server.pem").read_bytes())[0]
    installed = _service(fresh_home).inventory.by_serial(leaf.serial_number)[0]
    assert installed.serial not in (served.serial, orphan.serial)
    assert installed.superseded_by is None and installed.status_at(later).value == "valid"
    assert _service(fresh_home).inventory.by_serial(orphan.serial)[0].superseded_by == installed.serial
