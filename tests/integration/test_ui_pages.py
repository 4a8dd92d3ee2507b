"""The web UI in-process on a real CA home: every page, filters and keyset paging, issue
and revoke through the CLI's workflows audited as the session's user, roles."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from mtlskit.store import browse
from mtlskit.store.certificate_search import PageQuery, certificate_page
from mtlskit.ui.session import COOKIE
from tests.support_ui import UiPki

PAGES = ["/ui/certificates", "/ui/timeline", "/ui/issue", "/ui/status", "/ui/deployments"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return UiPki(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def browser(pki):
    return pki.login()


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_for_a_session(browser, path):
    response = browser.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Log out" in response.text


@pytest.mark.parametrize("path", PAGES + ["/ui/certificates/intermediate/1"])
def test_each_page_without_a_session_is_401(pki, path):
    response = pki.client.get(path)
    assert response.status_code == 401 and "Not logged in" in response.text
    assert "Log out" not in response.text


def test_root_redirects_to_the_certificates(browser):
    response = browser.get("/ui/")
    assert response.status_code == 303 and response.headers["location"] == "/ui/certificates"


def test_search_by_name_prefix_and_serial(pki, browser):
    text = browser.get("/ui/certificates?q=ali").text
    assert ">alice</a>" in text and ">bob</a>" not in text
    serial = pki.record("bob").serial_hex
    text = browser.get(f"/ui/certificates?q={serial.upper()}").text
    assert ">bob</a>" in text and ">alice</a>" not in text


def test_filter_by_profile_and_status(browser):
    text = browser.get("/ui/certificates?profile=ocsp").text
    assert "OCSP Responder" in text and ">alice</a>" not in text
    assert "No certificate matches" in browser.get("/ui/certificates?status=expired").text


def test_sort_by_expiry_both_ways(browser):
    def expiries(url):
        return re.findall(r"<td>(\d{4}-\d\d-\d\d \d\d:\d\dZ)", browser.get(url).text)
    ascending = expiries("/ui/certificates")
    assert ascending == sorted(ascending) and len(ascending) >= 3
    assert expiries("/ui/certificates?sort=-expiry") == sorted(ascending, reverse=True)


def test_keyset_pages_cover_every_row_once_both_ways(pki):
    db, now = pki.service.inventory.db, pki.service.clock.now()
    for descending in (False, True):
        seen, after = [], None
        while True:
            page = certificate_page(db, now, PageQuery(descending=descending, after=after, size=2))
            seen += [row_id for row_id, _ in page.rows]
            if not page.has_more:
                break
            after = page.rows[-1][0]
        assert len(seen) == len(set(seen)) == page.total
        back = certificate_page(db, now, PageQuery(descending=descending, before=seen[-1], size=2))
        assert [row_id for row_id, _ in back.rows] == seen[-3:-1]


def test_detail_shows_chain_sans_status_and_history(pki, browser):
    alice = pki.record("alice")
    text = browser.get(f"/ui/certificates/intermediate/{alice.serial_hex}").text
    assert 'id="status" class="status-valid">valid' in text
    assert "URI:https://mtlskit.invalid/client/alice" in text
    assert text.index("<strong>alice</strong>") < text.index("<strong>intermediate</strong>") < \
        text.index("<strong>root</strong>")
    assert "<td>issue</td>" in text


def test_unknown_certificate_is_404(browser):
    assert browser.get("/ui/certificates/intermediate/abc").status_code == 404
    assert browser.get("/ui/certificates/intermediate/not-hex").status_code == 404


def test_issue_downloads_a_modern_p12_audited_as_the_session(pki, browser):
    response = browser.post("/ui/issue", {"csrf": browser.csrf("/ui/issue"), "name": "carol", "key_type": "ec-p256",
                                          "format": "p12-modern", "password": "correct horse",
                                          "password2": "correct horse"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"] == 'attachment; filename="carol-modern.p12"'
    bundle = pkcs12.load_pkcs12(response.content, b"correct horse")
    assert bundle.cert.certificate.subject.rfc4514_string() == "CN=carol"
    carol = pki.record("carol")
    assert carol.directory is None and carol.serial == bundle.cert.certificate.serial_number
    [event] = browse.history(pki.service.inventory.db, "intermediate", carol.serial_hex)
    assert event["action"] == "issue" and event["detail"]["by"] == f"session:{pki.setup.user}"
    assert not any((pki.home / "scratch").iterdir())  # the key is not kept


@pytest.mark.parametrize("fields, message", [
    ({"password": "short", "password2": "short"}, "at least 8"),
    ({"password2": "different!"}, "differ"),
    ({"name": "bad/name"}, "bad/name"),
    ({"format": "zip"}, "download format"),
])
def test_issue_refusals_rerender_the_form_and_issue_nothing(pki, browser, fields, message):
    before = pki.service.inventory.count()
    form = {"csrf": browser.csrf("/ui/issue"), "name": "dave", "key_type": "ec-p256", "format": "p12-modern",
            "password": "correct horse", "password2": "correct horse", **fields}
    response = browser.post("/ui/issue", form)
    assert response.status_code == 422 and message in response.text
    assert 'id="password" type="password"' in response.text and "correct horse" not in response.text
    assert pki.service.inventory.count() == before


def test_revoke_needs_the_confirmation_step_then_is_audited(pki, browser):
    bob = pki.record("bob")
    url = f"/ui/certificates/intermediate/{bob.serial_hex}/revoke"
    assert 'id="continue"' in browser.get(url).text
    review = browser.post(url, {"csrf": browser.csrf(), "reason": "key-compromise"})
    assert review.status_code == 200 and 'id="confirm"' in review.text
    assert pki.record("bob").status == "valid"   # nothing yet
    done = browser.post(url, {"csrf": browser.csrf(), "reason": "key-compromise", "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=revoked")
    assert pki.record("bob").revocation_reason == "key-compromise"
    events = browse.history(pki.service.inventory.db, "intermediate", bob.serial_hex)
    assert events[-1]["action"] == "revoke" and events[-1]["detail"]["by"] == f"session:{pki.setup.user}"
    again = browser.post(url, {"csrf": browser.csrf(), "reason": "superseded", "confirm": "yes"})
    assert again.status_code == 409 and "already revoked" in again.text


def test_status_and_timeline_show_the_inventory(pki, browser):
    status = browser.get("/ui/status").text
    assert "<td>intermediate</td>" in status and "OCSP Responder" in status
    timeline = browser.get("/ui/timeline").text
    assert "<svg" in timeline and "week of" in timeline


def test_a_read_role_session_sees_but_cannot_issue_or_revoke(pki):
    cookie, _ = _session(pki, "reader", "read")
    headers = {"cookie": f"{COOKIE}={cookie}"}
    assert pki.client.get("/ui/certificates", headers=headers).status_code == 200
    assert pki.client.get("/ui/issue", headers=headers).status_code == 403
    alice = pki.record("alice")
    assert pki.client.get(f"/ui/certificates/intermediate/{alice.serial_hex}/revoke",
                          headers=headers).status_code == 403


def test_logout_ends_the_session_for_every_worker(pki):
    browser = pki.login()
    assert browser.post("/ui/logout", {"csrf": browser.csrf()}).status_code == 200
    assert browser.get("/ui/certificates").status_code == 401


def test_audit_by_is_absent_outside_a_session(pki):
    detail = pki.service.inventory.events(limit=500)
    cli_issues = [e for e in detail if e["action"] == "issue" and e["detail"].get("name") == "alice"]
    assert cli_issues and "by" not in cli_issues[0]["detail"]


def _session(pki, name, role):
    from mtlskit.ui.session import Sessions

    sessions = Sessions(pki.setup.key, pki.setup.state_dir, 600)
    return sessions.open(name, role, "link", dt.datetime.now(dt.timezone.utc).timestamp())


def test_deployments_page_lists_what_deploy_recorded(pki, browser):
    from mtlskit.store.deployments import DeploymentRow, save_deployment

    row = DeploymentRow("nginx", "web1", "/etc/mtlskit/<web1>", "ocsp", None, "{}")
    save_deployment(pki.service.inventory, row, pki.service.clock.now())
    text = browser.get("/ui/deployments").text
    assert "<td>nginx</td><td>web1</td>" in text and "/etc/mtlskit/&lt;web1&gt;" in text


def test_issue_with_an_email_san_and_a_lifetime(pki, browser):
    form = {"csrf": browser.csrf("/ui/issue"), "name": "erin", "email": "erin@example.test", "days": "30",
            "key_type": "rsa-2048", "format": "p12-legacy", "password": "correct horse", "password2": "correct horse"}
    response = browser.post("/ui/issue", form)
    assert response.status_code == 200, response.text
    erin = pki.record("erin")
    assert any(san.lower() == "email:erin@example.test" for san in erin.sans), erin.sans
    assert (erin.not_after - erin.not_before).days == 30 and erin.key_type == "rsa-2048"


def test_expiring_filter_on_the_page_keeps_its_choice(pki, browser):
    text = browser.get("/ui/certificates?expiring=30").text
    assert '<option value="30" selected>' in text and ">alice</a>" not in text   # alice lives a year
    assert "OCSP Responder" in text   # responders live 7 days
    assert browser.get("/ui/certificates?expiring=12345").status_code == 200   # not offered: ignored
