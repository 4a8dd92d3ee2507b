"""The merged service in a real `mtlskit serve --api --ui` (its own HTTP server, forked
workers): hostile framing on the new routes, a client that never reads the API's or the
metrics' answers, a race on one log-in link, and what serve's log shows afterwards."""

from __future__ import annotations

import concurrent.futures
import re
import socket
import time

import pytest

from mtlskit.cli.app import main
from tests.security.test_serve_abuse import exchange, rss_kib
from tests.support_ocsp import ServeProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.security]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("combined-serve") / "home"
    assert main(["--home", str(home), "init", "--name", "Combined CA", "--no-passphrase"]) == 0
    server = ServeProcess(home, free_port(), "--api", "--ui", "--workers", "2")
    link = re.search(r"/ui/login\?token=([A-Za-z0-9_-]+)", server.log.read_text()).group(1)
    api_token = (home / "api-token").read_text().strip()
    yield server, home, link, api_token
    server.stop()


def _get(path: str, headers: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("path", ["/api/v1/whoami", "/ui/logout", "/metrics", "/authz"])
def test_a_content_length_of_thousands_of_digits_is_refused_not_a_crash(served, path):
    server = served[0]
    answer = exchange(server, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {'9' * 5000}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 4"), answer[:80]
    assert _status(exchange(server, _get("/healthz", "Connection: close\r\n"))) == 200


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/metrics", "/ui/certificates", "/api/v1/certificates",
                                  "/authz"])
def test_a_client_that_never_reads_the_new_routes_does_not_hold_the_server(served, path):
    server, _, _, api_token = served
    pids = [int(p) for p in _children(server.process.pid)]
    before = {pid: rss_kib(pid) for pid in pids}
    request = _get(path, f"Authorization: Bearer {api_token}\r\n") * 400
    hog = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5
    while sent < len(request) and time.monotonic() < deadline:
        try:
            sent += hog.send(request[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    try:
        started = time.monotonic()
        assert _status(exchange(server, _get("/healthz", "Connection: close\r\n"))) == 200
        assert time.monotonic() - started < 5
        for pid in pids:
            assert rss_kib(pid) - before[pid] < 64 * 1024, (path, pid)
    finally:
        hog.close()


def test_a_log_in_link_raced_by_many_clients_opens_one_session(served):
    server, home, _, _ = served
    from mtlskit.config import load_settings
    from mtlskit.ui.session import LoginLinks

    token = LoginLinks(home / "ui").create()
    assert load_settings(home, {})   # the home is readable by this process too
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: exchange(server, _get(f"/ui/login?token={token}", "Connection: close\r\n")),
                                range(16)))
    wrong = list(pool_map_wrong(server, 32))
    assert sorted(_status(a) for a in answers).count(303) == 1
    assert all(_status(a) == 403 for a in wrong)


def pool_map_wrong(server, count: int):
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        yield from pool.map(lambda i: exchange(server, _get(f"/ui/login?token={'x' * 43}{i}", "Connection: close\r\n")),
                            range(count))


def test_serve_log_shows_no_secret_and_no_traceback_after_the_attacks(served):
    server, _, link, api_token = served
    exchange(server, _get(f"/ui/login?token={link}", "Connection: close\r\n"))
    exchange(server, _get("/api/v1/whoami", f"Authorization: Bearer {api_token}x\r\nConnection: close\r\n"))
    exchange(server, _get("/api/v1/certificates?limit=" + "9" * 5000,
                          f"Authorization: Bearer {api_token}\r\nConnection: close\r\n"))
    text = server.log.read_text()
    assert api_token not in text and "Traceback" not in text
    assert text.count(link) == 1   # the banner that prints it, and nothing else


def _children(pid: int) -> list[str]:
    from pathlib import Path

    found = [str(pid)]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += children
    return found


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"])
@pytest.mark.parametrize("path", ["/api/v1/certificates", "/metrics", "/authz", "/ui/certificates", "/ui/login",
                                  "/healthz", "/ocsp", "/crl/intermediate.crl"])
def test_odd_methods_on_every_route_family_of_the_real_server(served, method, path):
    server = served[0]
    target = "127.0.0.1:1" if method == "CONNECT" else path
    answer = exchange(server, f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status = _status(answer)
    assert 200 <= status < 500, (method, path, answer[:120])
    if method == "HEAD":
        head, _, body = answer.partition(b"\r\n\r\n")
        assert body == b"", (path, body[:80])
    if path.startswith(("/api/v1/certificates", "/ui/certificates")):
        assert status in (400, 401, 404, 405), (method, path, status)


@pytest.fixture(scope="module")
def tls_served(tmp_path_factory):
    from tests.support_ocsp import mtlskit_cli

    root = tmp_path_factory.mktemp("combined-tls")
    home = root / "home"
    assert mtlskit_cli(home, "init", "--name", "Combined TLS CA", "--no-passphrase").returncode == 0
    with open(home / "mtlskit.toml", "a") as config:
        config.write('\n[roles]\nadmin = ["carol"]\n')
    assert mtlskit_cli(home, "issue", "client", "carol", "--out", str(root / "carol")).returncode == 0
    tls_port = free_port()
    server = ServeProcess(home, free_port(), "--tls-port", str(tls_port), "--ui", "--api")
    yield root, home, server, tls_port
    server.stop()


def _tls_get(home, port: int, path: str, client=None, cookie: str | None = None):
    import http.client
    import ssl

    context = ssl.create_default_context(cadata=(home / "ca" / "root.pem").read_text())
    if client is not None:
        context.load_cert_chain(client / "fullchain.pem", client / "key.pem")
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    connection.request("GET", path, headers={"Cookie": f"mtlskit_ui={cookie}"} if cookie else {})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_a_certificate_session_ends_when_the_cli_revokes_the_certificate(tls_served):
    from tests.support_ocsp import mtlskit_cli

    root, home, server, port = tls_served
    first = _tls_get(home, port, "/ui/certificates", root / "carol")
    assert first.status == 200
    cookie = first.getheader("set-cookie").split(";", 1)[0].split("=", 1)[1]
    assert _tls_get(home, port, "/ui/issue", root / "carol", cookie=cookie).status == 200
    # the cookie alone is not enough: the certificate that opened the session must come with it
    assert _tls_get(home, port, "/ui/issue", cookie=cookie).status == 401
    assert mtlskit_cli(home, "revoke", "carol").returncode == 0
    assert _tls_get(home, port, "/ui/issue", cookie=cookie).status == 401
    assert _tls_get(home, port, "/ui/certificates", root / "carol", cookie=cookie).status == 401
    plain = exchange(server, _get("/ui/certificates", f"Cookie: mtlskit_ui={cookie}\r\nConnection: close\r\n"))
    assert _status(plain) == 401
