"""The agent of a host without the CA: renews the certificate of one directory over mTLS
(``mtlskit.lifecycle.remote.renew_remote``) on the same plan as the local agent.

Failures are remembered beside the directory (``.<dir>.agent-state.json``, 0600: the
directory itself is swapped whole on renewal). A CA that does not answer (a closed port,
a timeout) backs off like any failure, and between attempts each wake opens a TCP
connection to its port (no TLS, no request): once the port answers again after being
seen closed, the next attempt is made at once.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

from cryptography import x509

from mtlskit.clock import Clock, SystemClock
from mtlskit.errors import MtlskitError
from mtlskit.fileio import read_input
from mtlskit.lifecycle import plan
from mtlskit.lifecycle.agent import CA_CHECK_EVERY
from mtlskit.lifecycle.agent_report import Action, Kind, Report, alarm_window, reason_of
from mtlskit.lifecycle.agent_state import Failure, load_state, save_state

PORT_CHECK_TIMEOUT = 2.0


def state_path_for(cert_dir: Path) -> Path:
    return cert_dir.parent / f".{cert_dir.name}.agent-state.json"


class RemoteAgent:
    """Keeps the certificate of ``cert_dir`` fresh against the CA at ``ca_url``."""

    def __init__(self, ca_url: str, cert_dir: Path, *, clock: Clock | None = None,
                 renew=None, timeout: float | None = None) -> None:
        from mtlskit.lifecycle.remote import CaUrl

        self.url = CaUrl.parse(ca_url)
        self.ca_url = ca_url
        self.cert_dir = Path(cert_dir).absolute()
        self.clock = clock or SystemClock()
        self._renew = renew
        self.timeout = timeout
        self.state_path = state_path_for(self.cert_dir)

    def clock_now(self) -> dt.datetime:
        return self.clock.now()

    def run_once(self) -> Report:
        """Renew the certificate if it is due (and its backoff allows); say when next."""
        now = self.clock.now()
        report = Report()
        failures = load_state(self.state_path)
        certificate = self._current()
        key = format(certificate.serial_number, "x")
        failure = failures.get(key)
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        target = f"{self.cert_dir} serial:{key}"
        if not_after <= now:
            report.add(Action(Kind.EXPIRED, target, f"expired {not_after:%Y-%m-%dT%H:%M:%SZ}; it cannot "
                              "authenticate a renewal: enroll again"))
            return report
        if failure is not None and failure.ca_down and failure.next_attempt and now < failure.next_attempt:
            if self._port_open():
                if failure.saw_down:
                    failure.next_attempt = now
            else:
                failure.saw_down = True
        due = plan.renew_at(certificate.serial_number, not_before, not_after)
        if now >= due and (failure is None or failure.next_attempt is None or now >= failure.next_attempt):
            failures = {}
            failure = self._attempt(target, not_before, not_after, failure, now, report)
            if failure is not None:
                failures[key] = failure
        elif failure is not None:
            failures = {key: failure}
        save_state(self.state_path, failures)
        self._plan_next(failures, now, report)
        return report

    def _current(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(read_input(self.cert_dir / "cert.pem"))
        except (OSError, ValueError) as exc:
            from mtlskit.errors import BadInput

            raise BadInput(f"{self.cert_dir}: no readable cert.pem ({exc})") from None

    def _attempt(self, target, not_before, not_after, previous: Failure | None, now, report: Report):
        from mtlskit.lifecycle.remote import CaUnreachable

        renew = self._renew or _renew_remote
        try:
            issued = renew(self.ca_url, self.cert_dir, clock=self.clock, timeout=self.timeout)
        except (MtlskitError, OSError) as exc:   # a refusal, an unreachable CA, a directory not writable
            count = (previous.failures if previous else 0) + 1
            retry = plan.next_attempt(count, now, not_before, not_after)
            down = isinstance(exc, CaUnreachable)
            kind = Kind.FAILED if retry.at_risk else Kind.RETRY
            report.add(Action(kind, target, f"attempt {count} failed: {reason_of(exc)}", retry.at))
            return Failure(count, retry.at, reason_of(exc), ca_down=down, target=target, expires=not_after)
        report.add(Action(Kind.RENEWED, target, f"new serial:{issued.serial}, valid until {issued.not_after}, "
                          f"in {self.cert_dir}"))
        return None

    def _port_open(self) -> bool:
        try:
            with socket.create_connection((self.url.host, self.url.port), timeout=PORT_CHECK_TIMEOUT):
                return True
        except OSError:
            return False

    def _plan_next(self, failures: dict[str, Failure], now: dt.datetime, report: Report) -> None:
        certificate = self._current()
        serial = certificate.serial_number
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        failure = failures.get(format(serial, "x"))
        due = plan.renew_at(serial, not_before, not_after)
        if failure is not None and failure.next_attempt is not None:
            due = max(due, failure.next_attempt)
            if failure.ca_down:
                due = min(due, now + CA_CHECK_EVERY)
        report.wake_at.append(due)
        if plan.expires_within(not_after, now, alarm_window(plan.lifetime(not_before, not_after))):
            report.add(Action(Kind.EXPIRING, f"{self.cert_dir} serial:{serial:x}",
                              f"expires {not_after:%Y-%m-%dT%H:%M:%SZ}"
                              + (f"; last failure: {failure.reason}" if failure else "")))


def _renew_remote(ca_url: str, cert_dir: Path, *, clock, timeout):
    from mtlskit.lifecycle.remote import TIMEOUT_SECONDS, renew_remote

    return renew_remote(ca_url, cert_dir, clock=clock, timeout=timeout or TIMEOUT_SECONDS)
