"""The web UI in-process (httpx ASGI transport on a real CA home) with a cookie jar, and
hostile inventory rows for the attacker's tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets

from mtlskit.api.wiring import build_worker
from mtlskit.config import load_settings
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.service import Service
from mtlskit.store.inventory import CertificateRecord
from mtlskit.ui.session import COOKIE
from mtlskit.ui.setup import UiSetup
from tests.support_crl import issue, make_home
from tests.support_ocsp import AsgiClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class UiPki:
    """A CA home with alice and bob issued, one worker with the UI on."""

    def __init__(self, tmp_path, settings: dict | None = None) -> None:
        self.home = make_home(tmp_path)
        self.out = tmp_path / "out"
        self.dirs = {name: issue(self.home, "client", name, self.out) for name in ("alice", "bob")}
        self.settings = load_settings(self.home, {"ocsp_refresh_seconds": 3600, **(settings or {})})
        self.service = Service.open(self.settings)
        self.authority = self.service.authority(lambda: None)
        CrlRefresher(self.service, self.authority).publish_due()
        self.setup = UiSetup.prepare(self.settings, self.service.clock.now().timestamp())
        self.worker = build_worker(self.service, self.authority, ui=self.setup)
        self.client = AsgiClient(self.worker.app)

    def login(self) -> "Browser":
        response = self.client.get(f"/ui/login?token={self.setup.login_link()}")
        assert response.status_code == 303, response.text
        return Browser(self.client, response.cookies[COOKIE])

    def record(self, name: str) -> CertificateRecord:
        return self.service.inventory.by_name(name)[-1]

    def add_hostile(self, name: str, sans: tuple[str, ...], days: int = 10) -> CertificateRecord:
        """A row whose NAME and SANs are markup (as a hostile CSR's CN could bring), with a real PEM."""
        model = self.record("alice")
        now = self.service.clock.now()
        record = dataclasses.replace(model, serial=secrets.randbits(64) | 1 << 63, name=name, sans=sans,
                                     subject=f"CN={name}", not_before=now - dt.timedelta(days=1),
                                     not_after=now + dt.timedelta(days=days),
                                     fingerprint_sha256=hashlib.sha256(secrets.token_bytes(16)).hexdigest())
        self.service.inventory.add_certificates([record], now)
        return record


@dataclasses.dataclass
class Browser:
    client: AsgiClient
    cookie: str

    def get(self, url: str, **kwargs):
        return self.client.get(url, headers={"cookie": f"{COOKIE}={self.cookie}"}, **kwargs)

    def post(self, url: str, data: dict, **kwargs):
        return self.client.post(url, data=data, headers={"cookie": f"{COOKIE}={self.cookie}"}, **kwargs)

    def csrf(self, url: str = "/ui/certificates") -> str:
        return CSRF.search(self.get(url).text).group(1)


def fill_inventory(service, model: CertificateRecord, count: int, chunk: int = 10_000) -> None:
    """``count`` synthetic rows shaped like a real inventory (fast: no signing): names
    c000000..., one in four a server, expiries spread from 30 days ago to a year ahead,
    one in twenty revoked, each with its "issue" audit event. The PEM is ``model``'s."""
    now = service.clock.now()
    rng = secrets.SystemRandom()
    for start in range(0, count, chunk):
        rows = []
        for i in range(start, min(start + chunk, count)):
            serial = rng.getrandbits(63) | 1 << 62
            revoked = i % 20 == 0
            rows.append(dataclasses.replace(
                model, serial=serial, name=f"c{i:06d}", profile="server" if i % 4 == 0 else "client",
                subject=f"CN=c{i:06d}", sans=(f"DNS:c{i:06d}.example.test",),
                not_before=now - dt.timedelta(days=60), not_after=now + dt.timedelta(minutes=rng.randint(-43_200, 525_600)),
                fingerprint_sha256=hashlib.sha256(serial.to_bytes(8, "big")).hexdigest(),
                status="revoked" if revoked else "valid", revoked_at=now if revoked else None,
                revocation_reason="superseded" if revoked else None, directory=None))
        service.inventory.add_certificates(rows, now)
