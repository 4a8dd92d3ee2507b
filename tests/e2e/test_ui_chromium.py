"""The web UI walked in a real headless Chromium (Debian's chromium + chromedriver, driven
by selenium) against a real `mtlskit serve --ui` on 127.0.0.1: log in with the printed
one-time link, search, issue and download a modern and a legacy PKCS#12 (opened by openssl
and keytool) and a .mobileconfig (plistlib, its PKCS#12 opened by openssl), revoke with the
confirmation step, then `openssl ocsp` answers "revoked". A screenshot of each page is
written under the test's temporary directory."""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mtlskit.cli.app import main
from tests.judges import openssl
from tests.support_ocsp import ServeProcess, free_port

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("chromium") is None or shutil.which("chromedriver") is None,
                                 reason="Debian's chromium and chromium-driver are not installed "
                                        "(scripts/system-deps.sh installs them)")]
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

PASSWORD = "walk-the-ui-42"
LOGIN_LINE = re.compile(r"^  UI +(http://127\.0\.0\.1:\d+/ui/login\?token=[A-Za-z0-9_-]+)", re.M)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-walk")
    home, port = root / "home", free_port()
    assert main(["--home", str(home), "init", "--name", "UI Walk CA", "--no-passphrase",
                 "--public-url", f"http://127.0.0.1:{port}"]) == 0
    assert main(["--home", str(home), "issue", "client", "alice", "--out", str(root / "alice")]) == 0
    server = ServeProcess(home, port, "--ui")
    yield home, server, root
    server.stop()


@pytest.fixture(scope="module")
def browser(served):
    home, server, root = served
    downloads = root / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False,
                                              "safebrowsing.enabled": False})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver, downloads
    driver.quit()


def _shot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 1000


def _wait_for_file(directory: Path, name: str, within: float = 30) -> Path:
    deadline = time.monotonic() + within
    path = directory / name
    while time.monotonic() < deadline:
        if path.exists() and not (directory / f"{name}.crdownload").exists():
            return path
        time.sleep(0.1)  # polling the browser's download, bounded by the deadline
    raise AssertionError(f"{name} was not downloaded: {sorted(p.name for p in directory.iterdir())}")


def _issue(driver, base: str, name: str, download_format: str) -> None:
    driver.get(f"{base}/ui/issue")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, f"format-{download_format}").click()
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "password2").send_keys(PASSWORD)
    driver.find_element(By.ID, "issue").click()


def _password_file(root: Path) -> Path:
    path = root / "p12.pass"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def _keytool_lists(bundle: Path, password_file: Path, name: str) -> None:
    listed = subprocess.run(["keytool", "-list", "-v", "-keystore", str(bundle), "-storetype", "PKCS12",
                             "-storepass:file", str(password_file)], capture_output=True, timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert b"PrivateKeyEntry" in listed.stdout and f"CN={name}".encode() in listed.stdout


def test_walk_login_search_issue_download_revoke_ocsp(served, browser, tmp_path):
    home, server, root = served
    driver, downloads = browser
    login_url = LOGIN_LINE.search(server.log.read_text()).group(1)

    driver.get(login_url)  # log in: the token becomes a cookie, the URL loses it
    assert driver.current_url == f"{server.url}/ui/certificates"
    assert "token" not in driver.current_url and "alice" in driver.page_source
    _shot(driver, tmp_path, "certificates")

    driver.get(login_url)  # the link works once
    assert "already used" in driver.page_source

    driver.get(f"{server.url}/ui/certificates")  # search
    driver.find_element(By.NAME, "q").send_keys("ali")
    driver.find_element(By.ID, "search").click()
    rows = driver.find_elements(By.CSS_SELECTOR, "#certificates tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == ["alice"]
    _shot(driver, tmp_path, "search")

    password_file = _password_file(root)
    _issue(driver, server.url, "phone-modern", "p12-modern")
    modern = _wait_for_file(downloads, "phone-modern-modern.p12")
    _shot(driver, tmp_path, "issue")
    info = openssl("pkcs12", "-in", modern, "-passin", f"file:{password_file}", "-info", "-noout")
    assert info.returncode == 0 and b"PBES2" in info.stderr + info.stdout, info.stderr
    _keytool_lists(modern, password_file, "phone-modern")

    _issue(driver, server.url, "phone-legacy", "p12-legacy")
    legacy = _wait_for_file(downloads, "phone-legacy-legacy.p12")
    info = openssl("pkcs12", "-legacy", "-in", legacy, "-passin", f"file:{password_file}", "-info", "-noout")
    assert info.returncode == 0 and b"pbeWithSHA1And3-KeyTripleDES-CBC" in info.stderr + info.stdout, info.stderr
    _keytool_lists(legacy, password_file, "phone-legacy")

    _issue(driver, server.url, "phone-ios", "mobileconfig")
    profile = plistlib.loads(_wait_for_file(downloads, "phone-ios.mobileconfig").read_bytes())
    identity, trust = profile["PayloadContent"]
    assert (identity["PayloadType"], trust["PayloadType"]) == ("com.apple.security.pkcs12", "com.apple.security.root")
    embedded = root / "embedded.p12"
    embedded.write_bytes(identity["PayloadContent"])
    opened = openssl("pkcs12", "-legacy", "-in", embedded, "-passin", f"file:{password_file}", "-nokeys")
    assert opened.returncode == 0 and b"CN = phone-ios" in opened.stdout, opened.stderr
    root_der = openssl("x509", "-in", home / "ca" / "root.pem", "-outform", "DER").stdout
    assert trust["PayloadContent"] == root_der

    for page in ("timeline", "status", "deployments"):
        driver.get(f"{server.url}/ui/{page}")
        assert driver.find_element(By.TAG_NAME, "h1").text
        _shot(driver, tmp_path, page)
        if page == "timeline":  # the server-side SVG, with a bar per week
            assert len(driver.find_elements(By.CSS_SELECTOR, "#chart svg rect")) == 26

    driver.get(f"{server.url}/ui/certificates?q=phone-modern")  # revoke, with the confirmation step
    driver.find_element(By.LINK_TEXT, "phone-modern").click()
    _shot(driver, tmp_path, "detail")
    driver.find_element(By.ID, "revoke").click()
    Select(driver.find_element(By.ID, "reason")).select_by_value("key-compromise")
    driver.find_element(By.ID, "continue").click()
    assert "cannot be undone" in driver.find_element(By.ID, "confirm-text").text
    _shot(driver, tmp_path, "revoke-confirm")
    driver.find_element(By.ID, "confirm").click()
    assert driver.find_element(By.ID, "status").text.startswith("revoked (key-compromise")
    assert "session:" in driver.find_element(By.ID, "history").text
    _shot(driver, tmp_path, "revoked")

    certificate = pkcs12.load_pkcs12(modern.read_bytes(), PASSWORD.encode()).cert.certificate
    (root / "phone-modern.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    answer = openssl("ocsp", "-issuer", home / "ca" / "intermediate.pem", "-cert", root / "phone-modern.pem",
                     "-CAfile", home / "ca" / "root.pem", "-url", f"{server.url}/ocsp")
    assert "Response verify OK" in answer.stderr.decode(), answer.stderr
    assert "phone-modern.pem: revoked" in answer.stdout.decode() and "keyCompromise" in answer.stdout.decode()
    assert len(list((tmp_path / "screenshots").glob("*.png"))) == 9
