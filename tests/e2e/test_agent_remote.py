"""The remote agent (`mtlskit agent --ca-url URL --cert-dir DIR`) against a real
`mtlskit serve --tls-port` on 127.0.0.1: it renews a 24 h certificate when due, and
through a 6-hour outage of the CA (the serve process stopped: a closed port, for real)
it backs off (at most 20 attempts), looks at the port between attempts (a TCP connect),
and renews within a minute of the CA coming back. The agent's clock is a fixed clock
moved by its sleeps; the CA signs with its own (real) clock."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from cryptography import x509

from mtlskit.clock import FixedClock
from mtlskit.lifecycle import plan
from mtlskit.lifecycle.agent import CA_CHECK_EVERY, run_loop
from mtlskit.lifecycle.remote_agent import RemoteAgent, state_path_for
from tests.support_enroll import TlsServe, enroll_cli
from tests.support_ocsp import REPO, ServeProcess, mtlskit_env

pytestmark = pytest.mark.e2e
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    server = TlsServe(tmp_path_factory.mktemp("agent-remote"))
    yield server
    server.stop()


def enroll_24h(serve, tmp_path, name: str):
    out = tmp_path / name
    result = enroll_cli(serve, serve.token(name, "--profile", "client", "--hours", "24"), out)
    assert result.returncode == 0, result.stderr.decode()
    return out, x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())


def test_not_due_then_due_renewed_over_mtls(serve, tmp_path):
    directory, first = enroll_24h(serve, tmp_path, "agent-host-a")
    clock = FixedClock(first.not_valid_before_utc + HOUR)
    agent = RemoteAgent(serve.url, directory, clock=clock)
    report = agent.run_once()
    assert report.actions == []
    due = plan.renew_at(first.serial_number, first.not_valid_before_utc, first.not_valid_after_utc)
    assert report.wake_at == [due]
    clock.advance(due - clock.now())
    report = agent.run_once()
    assert [a.kind for a in report.actions] == ["renewed"]
    new = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
    assert new.serial_number != first.serial_number
    assert report.actions[0].line().startswith(f"renewed: {directory} serial:{first.serial_number:x}")


def test_six_hour_outage_with_the_port_closed(serve, tmp_path):
    directory, first = enroll_24h(serve, tmp_path, "agent-host-b")
    due = plan.renew_at(first.serial_number, first.not_valid_before_utc, first.not_valid_after_utc)
    outage_start, outage_end = due - dt.timedelta(minutes=5), due - dt.timedelta(minutes=5) + 6 * HOUR
    clock = FixedClock(outage_start - HOUR)
    agent = RemoteAgent(serve.url, directory, clock=clock, timeout=5)
    lines: list[tuple[dt.datetime, str]] = []
    wakes: list[dt.datetime] = []
    state = {"down": False}

    def wait(seconds: float) -> bool:
        before = clock.now()
        clock.advance(dt.timedelta(seconds=seconds))
        now = clock.now()
        if not state["down"] and outage_start <= now < outage_end:
            serve.server.stop()                          # the port closes for real
            state["down"] = True
        elif state["down"] and before < outage_end <= now:
            serve.server = ServeProcess(serve.home, serve.server.port, "--tls-port", str(serve.tls_port))
            state["down"] = False
        wakes.append(now)
        return any(line.startswith("renewed:") for _, line in lines) or now > first.not_valid_after_utc

    try:
        run_loop(agent, wait=wait, log=lambda line: lines.append((clock.now(), line)))
    finally:
        if state["down"]:
            serve.server = ServeProcess(serve.home, serve.server.port, "--tls-port", str(serve.tls_port))
    attempts = [(at, line) for at, line in lines if line.startswith(("retry:", "failed:"))]
    (renewed,) = [at for at, line in lines if line.startswith("renewed:")]
    assert attempts and all(outage_start <= at < outage_end for at, _ in attempts)
    assert all("cannot reach the CA at" in line for _, line in attempts)
    assert len(attempts) <= 20
    assert outage_end <= renewed <= outage_end + dt.timedelta(minutes=1)
    assert renewed < first.not_valid_after_utc
    gaps = [b - a for a, b in zip(wakes, wakes[1:]) if attempts[0][0] <= a < outage_end]
    assert max(gaps) <= CA_CHECK_EVERY
    assert not state_path_for(directory).exists() or json.loads(state_path_for(directory).read_text())["failures"] == {}
    print(f"\nremote outage: {len(attempts)} attempts over 6 h, renewed "
          f"{(renewed - outage_end).total_seconds():.0f} s after the port reopened")


def test_once_cli_remote(serve, tmp_path):
    directory, _ = enroll_24h(serve, tmp_path, "agent-host-c")
    run = subprocess.run([sys.executable, "-m", "mtlskit", "agent", "--once", "--json", "--ca-url", serve.url,
                          "--cert-dir", str(directory)], capture_output=True, env=mtlskit_env(), timeout=60,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr.decode()
    data = json.loads(run.stdout)
    assert data["actions"] == [] and data["next_wake"] is not None


def test_an_hour_before_expiry_with_the_ca_port_closed_raises_the_alarm(serve, tmp_path):
    from tests.support_ocsp import free_port

    directory, first = enroll_24h(serve, tmp_path, "agent-host-d")
    clock = FixedClock(first.not_valid_after_utc - HOUR)
    closed = f"https://127.0.0.1:{free_port()}"               # nothing listens there
    report = RemoteAgent(closed, directory, clock=clock, timeout=5).run_once()
    kinds = [a.kind for a in report.actions]
    assert kinds == ["retry", "expiring"], report.actions
    assert "cannot reach the CA at" in report.actions[0].detail
    assert [a.target for a in report.alarms] == [f"{directory} serial:{first.serial_number:x}"]
    assert "last failure: cannot reach the CA" in report.alarms[0].detail
    expired = RemoteAgent(closed, directory, clock=FixedClock(first.not_valid_after_utc)).run_once()
    assert [a.kind for a in expired.actions] == ["expired"] and "enroll again" in expired.actions[0].detail
