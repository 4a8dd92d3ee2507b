"""`make run` (python -m mtlskit.api.demo) serves the demo with the web UI on and prints
its one-time log-in URL, which logs in once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support_ocsp import free_port, mtlskit_env

pytestmark = pytest.mark.e2e
LOGIN_LINE = re.compile(r"^  UI +(http://127\.0\.0\.1:(\d+)/ui/login\?token=[A-Za-z0-9_-]+)  \(one-time log-in link\)$")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_make_run_prints_a_login_url_that_works_once(tmp_path):
    port = free_port()
    env = {**mtlskit_env(), "MTLSKIT_HOME": str(tmp_path / "demo-home"), "MTLSKIT_DEMO_OUT": str(tmp_path / "demo-out")}
    process = subprocess.Popen([sys.executable, "-m", "mtlskit.api.demo", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        url = _login_url(process, deadline=time.monotonic() + 60)
        assert f":{port}/" in url
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as first:
            opener.open(url, timeout=10)
        assert first.value.code == 303 and first.value.headers["location"] == "/ui/certificates"
        assert "mtlskit_ui=" in first.value.headers["set-cookie"]
        with pytest.raises(urllib.error.HTTPError) as second:
            opener.open(url, timeout=10)
        assert second.value.code == 403
    finally:
        process.terminate()
        process.wait(timeout=20)


def _login_url(process, deadline: float) -> str:
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode(errors="replace").rstrip("\n")
        if not line and process.poll() is not None:
            break
        lines.append(line)
        match = LOGIN_LINE.match(line)
        if match:
            return match.group(1)
    raise AssertionError("no log-in URL in the demo's output:\n" + "\n".join(lines))
