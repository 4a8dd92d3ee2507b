"""Hostile values in the options issue 10 added (--upstream pools and tcp://, --http2):
refused with one `error:` line and exit 2, nothing written."""

from __future__ import annotations

import pytest

HOSTILE_UPSTREAMS = [
    "tcp://127.0.0.1:5432;\n    server evil 10.0.0.1:22",
    "tcp://127.0.0.1:1;evil",
    "tcp://a{b}:1",
    "tcp://127.0.0.1:99999",
    "tcp://127.0.0.1:0",
    "tcp://127.0.0.1",
    "tcp://127.0.0.1:5432/path",
    "tcp://user:pw@127.0.0.1:5432",
    "tcp://127.0.0.1:5432?x=1",
    "udp://127.0.0.1:53",
    "tcp://[::1]:5432 ssl",
]


@pytest.mark.parametrize("server", ["nginx", "haproxy"])
@pytest.mark.parametrize("value", HOSTILE_UPSTREAMS)
def test_hostile_tcp_upstream_is_refused_and_nothing_written(ca_home, tmp_path, cli, server, value):
    target = tmp_path / "d"
    result = cli("--home", ca_home, "deploy", server, "--name", "db.example.com", "--dir", target,
                 "--listen", "8443", "--upstream", value, "--revocation", "none")
    assert result.code == 2, result.out
    assert result.err.startswith("error: ") and len(result.err.strip().splitlines()) <= 2
    assert not target.exists()


@pytest.mark.parametrize("second", ["127.0.0.1:8001", "tcp://127.0.0.1:8002", "https://127.0.0.1:8003"])
def test_a_pool_that_doubles_or_mixes_members_is_refused(ca_home, tmp_path, cli, second):
    result = cli("--home", ca_home, "deploy", "nginx", "--name", "pool.example.com", "--dir", tmp_path / "d",
                 "--listen", "8443", "--upstream", "http://127.0.0.1:8001", "--upstream", second,
                 "--revocation", "none")
    assert result.code == 2
    assert ("given twice" in result.err) or ("mixes" in result.err)
    assert not (tmp_path / "d").exists()
