"""`serve --ui --workers 2`: the log-in link works once across workers (an unlink only one
process wins), every worker accepts the session cookie (one key, shared through fork), and a
log-out is refused by both."""

from __future__ import annotations

import http.client
import re

import pytest

from tests.support_ocsp import ServeProcess, free_port, mtlskit_cli

pytestmark = pytest.mark.e2e
LOGIN = re.compile(r"/ui/login\?token=([A-Za-z0-9_-]+)")


def _request(port: int, method: str, path: str, cookie: str | None = None, body: str | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a new connection: any worker
    headers = {"cookie": cookie} if cookie else {}
    if body is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.text = response.read().decode()
    connection.close()
    return response


def test_two_workers_share_links_sessions_and_logouts(tmp_path):
    home = tmp_path / "home"
    assert mtlskit_cli(home, "init", "--no-passphrase").returncode == 0
    port = free_port()
    server = ServeProcess(home, port, "--ui", "--workers", "2")
    try:
        token = LOGIN.search(server.log.read_text()).group(1)
        logins = [_request(port, "GET", f"/ui/login?token={token}") for _ in range(6)]
        assert [r.status for r in logins].count(303) == 1 and [r.status for r in logins].count(403) == 5
        cookie = next(r for r in logins if r.status == 303).getheader("set-cookie").split(";", 1)[0]
        pages = [_request(port, "GET", "/ui/certificates", cookie) for _ in range(20)]
        assert {r.status for r in pages} == {200}
        csrf = re.search(r'name="csrf" value="([^"]+)"', pages[0].text).group(1)
        assert _request(port, "POST", "/ui/logout", cookie, f"csrf={csrf}").status == 200
        assert {_request(port, "GET", "/ui/certificates", cookie).status for _ in range(10)} == {401}
    finally:
        server.stop()
