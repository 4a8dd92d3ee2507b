"""The web UI from the attacker's side: forms without or with a wrong CSRF token, a log-in
link used twice, a session cookie of another `serve` (or forged, expired, ended), markup
in a certificate's NAME and SANs (escaped in every page and in the SVG), open redirects
after log-in, framing, caching of the page that carries a key."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest

from mtlskit.ui.pages import file_stem_of
from mtlskit.ui.session import COOKIE, LoginLinks, Sessions, _b64
from mtlskit.ui.setup import UiSetup
from tests.support_ui import UiPki

pytestmark = pytest.mark.security

XSS_NAME = '<script>alert("n")</script>'
XSS_SAN = 'DNS:"><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return UiPki(tmp_path_factory.mktemp("ui-attacks"))


@pytest.fixture(scope="module")
def browser(pki):
    return pki.login()


def _issue_form(csrf: str | None, name: str = "mallory") -> dict:
    form = {"name": name, "key_type": "ec-p256", "format": "p12-modern", "password": "correct horse",
            "password2": "correct horse"}
    return form if csrf is None else {**form, "csrf": csrf}


@pytest.mark.parametrize("csrf", [None, "", "x" * 43, "forged"])
def test_issue_without_or_with_a_wrong_csrf_token_is_refused_and_issues_nothing(pki, browser, csrf):
    before = pki.service.inventory.count()
    response = browser.post("/ui/issue", _issue_form(csrf))
    assert response.status_code == 403 and "CSRF" in response.text
    assert pki.service.inventory.count() == before


def test_the_csrf_token_of_another_session_is_refused(pki, browser):
    other = pki.login()
    response = browser.post("/ui/issue", _issue_form(other.csrf()))
    assert response.status_code == 403


@pytest.mark.parametrize("form", [{}, {"reason": "key-compromise", "confirm": "yes"},
                                  {"reason": "key-compromise", "confirm": "yes", "csrf": "nope"}])
def test_revoke_without_a_valid_csrf_token_revokes_nothing(pki, browser, form):
    alice = pki.record("alice")
    response = browser.post(f"/ui/certificates/intermediate/{alice.serial_hex}/revoke", form)
    assert response.status_code == 403
    assert pki.record("alice").status == "valid"


def test_logout_without_csrf_does_not_end_the_session(pki):
    browser = pki.login()
    assert browser.post("/ui/logout", {}).status_code == 403
    assert browser.get("/ui/certificates").status_code == 200


def test_a_form_that_is_not_urlencoded_is_refused(pki, browser):
    response = browser.client.post("/ui/issue", content=json.dumps(_issue_form(browser.csrf())),
                                   headers={"cookie": f"{COOKIE}={browser.cookie}", "content-type": "application/json"})
    assert response.status_code == 415


def test_a_login_link_works_once(pki):
    token = pki.setup.login_link()
    first = pki.client.get(f"/ui/login?token={token}")
    assert first.status_code == 303 and COOKIE in first.cookies
    second = pki.client.get(f"/ui/login?token={token}")
    assert second.status_code == 403 and COOKIE not in second.cookies
    assert "already used" in second.text


@pytest.mark.parametrize("token", ["", "short", "a" * 43, "../../etc/passwd" + "a" * 30])
def test_unknown_or_malformed_login_tokens_are_refused(pki, token):
    response = pki.client.get("/ui/login", params={"token": token})
    assert response.status_code == 403 and COOKIE not in response.cookies


def test_a_login_link_older_than_a_day_is_refused(pki, tmp_path):
    links = LoginLinks(tmp_path)
    token = links.create()
    later = dt.datetime.now(dt.timezone.utc).timestamp() + 24 * 3600 + 60
    assert links.consume(token, later) is False
    assert links.consume(token, later - 3600) is False  # used up by the refused try too


def test_only_the_digest_of_a_login_token_is_stored(pki):
    token = pki.setup.login_link()
    stored = [p.name for p in (pki.setup.state_dir / "login").iterdir()]
    assert token not in "".join(stored)
    assert oct((pki.setup.state_dir / "login").stat().st_mode & 0o777) == "0o700"


def test_a_session_cookie_of_another_serve_is_refused(pki, tmp_path):
    other = UiSetup.prepare(pki.settings, dt.datetime.now(dt.timezone.utc).timestamp())  # a restart, or another serve
    cookie, _ = Sessions(other.key, other.state_dir, 600).open("root", "admin", "link",
                                                              dt.datetime.now(dt.timezone.utc).timestamp())
    response = pki.client.get("/ui/certificates", headers={"cookie": f"{COOKIE}={cookie}"})
    assert response.status_code == 401


@pytest.mark.parametrize("change", [{"role": "admin"}, {"expires": 4_000_000_000}, {"name": "root"}])
def test_a_cookie_with_a_raised_role_or_changed_expiry_is_refused(pki, change):
    sessions = Sessions(pki.setup.key, pki.setup.state_dir, 600)
    cookie, session = sessions.open("reader", "read", "link", dt.datetime.now(dt.timezone.utc).timestamp())
    assert pki.client.get("/ui/certificates", headers={"cookie": f"{COOKIE}={cookie}"}).status_code == 200
    payload, signature = cookie.split(".")
    forged = {**json.loads(base64.urlsafe_b64decode(payload + "==")), **change}
    forged_cookie = _b64(json.dumps(forged, separators=(",", ":")).encode()) + "." + signature
    response = pki.client.get("/ui/certificates", headers={"cookie": f"{COOKIE}={forged_cookie}"})
    assert response.status_code == 401


def test_an_expired_session_is_refused(pki):
    sessions = Sessions(pki.setup.key, pki.setup.state_dir, 600)
    long_ago = dt.datetime.now(dt.timezone.utc).timestamp() - 3600
    cookie, _ = sessions.open("root", "admin", "link", long_ago)
    assert pki.client.get("/ui/certificates", headers={"cookie": f"{COOKIE}={cookie}"}).status_code == 401


def test_session_cookie_flags(pki):
    response = pki.client.get(f"/ui/login?token={pki.setup.login_link()}")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Max-Age=28800" in cookie  # ui_session_minutes (480) by default
    assert "Secure" not in cookie  # plain HTTP here; the TLS listener sets it (see the e2e walk)


@pytest.mark.parametrize("query", ["next=https://evil.example/", "next=//evil.example", "next=/\\evil.example",
                                   "return_to=https://evil.example", "redirect=%2F%2Fevil.example"])
def test_no_open_redirect_after_login(pki, query):
    response = pki.client.get(f"/ui/login?token={pki.setup.login_link()}&{query}")
    assert response.status_code == 303 and response.headers["location"] == "/ui/certificates"


def test_the_url_after_login_carries_no_secret(pki):
    token = pki.setup.login_link()
    response = pki.client.get(f"/ui/login?token={token}")
    assert token not in response.headers["location"] and "token" not in response.headers["location"]


@pytest.mark.parametrize("path", ["/ui/certificates", "/ui/issue", "/ui/timeline", "/ui/login?token=x",
                                  "/ui/static/style.css"])
def test_anti_framing_and_csp_on_every_response(browser, path):
    headers = browser.get(path).headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none': no script at all
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_pages_and_the_p12_download_are_not_cached(browser):
    assert browser.get("/ui/certificates").headers["cache-control"] == "no-store"
    response = browser.post("/ui/issue", _issue_form(browser.csrf("/ui/issue"), name="cached-not"))
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_markup_in_a_name_and_san_is_escaped_in_every_page_and_the_svg(pki, browser):
    hostile = pki.add_hostile(XSS_NAME, (XSS_SAN, "URI:javascript:alert(2)"), days=3)
    pages = {"list": browser.get("/ui/certificates").text,
             "search": browser.get("/ui/certificates", params={"q": XSS_NAME}).text,
             "detail": browser.get(f"/ui/certificates/intermediate/{hostile.serial_hex}").text,
             "revoke": browser.get(f"/ui/certificates/intermediate/{hostile.serial_hex}/revoke").text,
             "timeline": browser.get("/ui/timeline").text}
    for page, text in pages.items():
        assert "<script>" not in text and "<img" not in text, page
        assert "&lt;script&gt;" in text, page
    svg = re.search(r"<svg.*</svg>", pages["timeline"], re.S).group(0)
    assert "&lt;script&gt;alert(&#34;n&#34;)&lt;/script&gt;" in svg
    assert 'href="javascript' not in "".join(pages.values())


@pytest.mark.parametrize("name", ['a"; filename="evil.exe', "..\\..\\x", "\r\nSet-Cookie: a=b", ".hidden"])
def test_a_hostile_name_cannot_break_the_download_header(name):
    stem = file_stem_of(name)
    assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", stem), stem


def test_search_input_is_a_value_not_sql(browser):
    response = browser.get("/ui/certificates", params={"q": "' OR 1=1 --", "status": "'; DROP TABLE certificates"})
    assert response.status_code == 200 and "No certificate matches" in response.text
    assert browser.get("/ui/certificates").status_code == 200
