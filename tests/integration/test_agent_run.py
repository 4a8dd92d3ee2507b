"""The agent's passes: renew what is due (and only that), remember failures with backoff in
a private state file, re-sign CRLs past half their life, log a line per action; the CLI's
`--once` exit codes and `--json`; the loop stops cleanly on SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.cli.common import passphrase_source
from mtlskit.lifecycle import plan
from mtlskit.lifecycle.agent import CA_KEY, LocalAgent, run_loop
from mtlskit.lifecycle.agent_state import STATE_FILE, load_state

from tests.integration.agent_support import (T0, crl_next_updates, issue_fleet, new_home, no_passphrase,
                                             service_at)

HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def lab(tmp_path):
    """A passphrase-less CA at T0 with three 30-day certificates in tmp/fleet/<name>."""
    home = new_home(tmp_path / "home", "--no-passphrase")
    service = service_at(home)
    lifetimes = issue_fleet(service, tmp_path / "fleet", {30: 3})
    return service, lifetimes, tmp_path / "fleet"


def due_time(service, name: str) -> dt.datetime:
    (record,) = service.inventory.by_name(name)
    return plan.renew_at(record.serial, record.not_before, record.not_after)


def test_nothing_due_publishes_missing_crls_only(lab):
    service, _, _ = lab
    report = LocalAgent(service, no_passphrase).run_once()
    assert {a.kind for a in report.actions} == {"crl"}
    assert not report.alarms
    assert all(nu > service.clock.now() + 6 * DAY for nu in crl_next_updates(service).values())
    again = LocalAgent(service, no_passphrase).run_once()
    assert again.actions == []          # a CRL younger than half its life stays


def test_due_certificate_is_renewed_into_its_directory(lab):
    service, lifetimes, fleet = lab
    first = sorted(lifetimes, key=lambda n: due_time(service, n))
    service.clock.advance(due_time(service, first[0]) - service.clock.now())
    report = LocalAgent(service, no_passphrase).run_once()
    renewed = [a for a in report.actions if a.kind == "renewed"]
    assert [a.target.split()[0] for a in renewed] == [first[0]]
    assert renewed[0].line().startswith(f"renewed: {first[0]} serial:")
    (old,) = [r for r in service.inventory.by_name(first[0]) if r.serial_hex == renewed[0].target.split(":")[1]]
    newest = max(service.inventory.by_name(first[0]), key=lambda r: r.not_before)
    on_disk = x509.load_pem_x509_certificate((fleet / first[0] / "cert.pem").read_bytes())
    assert on_disk.serial_number == newest.serial != old.serial
    assert newest.not_after - old.not_after > 20 * DAY
    # the renewed one is not due again; the others are not due yet
    assert [a.kind for a in LocalAgent(service, no_passphrase).run_once().actions] == []


def test_ca_key_failure_is_one_retry_with_backoff_in_a_private_file(lab):
    service, lifetimes, _ = lab
    service.clock.advance(22 * DAY)                     # all three due (2/3 of 30 d + < 1.5 d)
    broken = LocalAgent(service, no_passphrase)
    service.ca_files.load = _refusing_load              # the CA key cannot be used
    report = broken.run_once()
    retries = [a for a in report.actions if a.kind == "retry"]
    assert len(retries) == 1 and retries[0].at == service.clock.now() + dt.timedelta(seconds=30)
    assert retries[0].line().startswith("retry: CA key at ")
    assert "attempt 1 failed: the CA key cannot be used: the intermediate CA key is encrypted" in retries[0].line()
    state_path = service.settings.home / STATE_FILE
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    state = load_state(state_path)
    assert state.pop(CA_KEY).failures == 1
    assert len(state) == 3 and all(f.failures == 0 and f.next_attempt is None for f in state.values())
    # before the retry time: no attempt; the next wake is the retry time
    service.clock.advance(dt.timedelta(seconds=20))
    report = broken.run_once()
    assert not [a for a in report.actions if a.kind == "retry"]
    assert min(report.wake_at) == service.clock.now() + dt.timedelta(seconds=10)
    # at the retry time: attempt 2, the next one 60 s later
    service.clock.advance(dt.timedelta(seconds=10))
    second = [a for a in broken.run_once().actions if a.kind == "retry"]
    assert len(second) == 1 and second[0].at == service.clock.now() + dt.timedelta(seconds=60)
    # the CA back: renewed at the next attempt, failures forgotten
    del service.ca_files.load
    service.clock.advance(dt.timedelta(seconds=60))
    kinds = [a.kind for a in LocalAgent(service, no_passphrase).run_once().actions]
    assert kinds.count("renewed") == 3 and load_state(state_path) == {}


def test_one_certificate_failing_does_not_stop_the_others(lab):
    service, lifetimes, _ = lab
    service.clock.advance(22 * DAY)
    victim = sorted(lifetimes)[1]
    from mtlskit.lifecycle.renew import renew_certificates

    def renew(service_, authority, records):
        if any(r.name == victim for r in records):
            raise OSError(30, "Read-only file system", f"/srv/{victim}/cert.pem")
        return renew_certificates(service_, authority, records)

    report = LocalAgent(service, no_passphrase, renew=renew).run_once()
    assert sorted(a.target.split()[0] for a in report.actions if a.kind == "renewed") == \
        sorted(set(lifetimes) - {victim})
    (retry,) = [a for a in report.actions if a.kind == "retry"]
    assert retry.target.startswith(f"{victim} serial:")
    assert "attempt 1 failed: Read-only file system: /srv/" in retry.line()
    failures = load_state(service.settings.home / STATE_FILE)
    assert [f.failures for f in failures.values()] == [1]


def _refusing_load(source):
    from mtlskit.errors import WrongPassphrase

    raise WrongPassphrase("the intermediate CA key is encrypted and no passphrase was given")


def test_crl_re_signed_past_half_its_life(lab):
    service, _, _ = lab
    agent = LocalAgent(service, no_passphrase)
    agent.run_once()
    published = crl_next_updates(service)
    service.clock.advance(3 * DAY)
    assert not [a for a in agent.run_once().actions if a.kind == "crl"]
    service.clock.advance(DAY)                           # 4 days of 7: past half
    crl_lines = [a.line() for a in agent.run_once().actions if a.kind == "crl"]
    # the intermediate's 7-day CRL; the root's lives root_crl_days (365): not due yet
    assert len(crl_lines) == 1 and "CRL of intermediate: re-signed: number 2" in crl_lines[0]
    now = crl_next_updates(service)
    assert now["intermediate"] > published["intermediate"] and now["root"] == published["root"]


def test_a_crl_that_cannot_be_re_signed_raises_the_alarm_a_day_before(lab):
    service, _, _ = lab
    agent = LocalAgent(service, no_passphrase)
    agent.run_once()                                     # CRLs published, 7 days
    service.ca_files.load = _refusing_load
    service.clock.advance(5 * DAY + 23 * HOUR)
    report = agent.run_once()
    assert {a.target for a in report.alarms} == set()
    assert [a.kind for a in report.actions if a.target.startswith("CRL")] == ["crl-failed"]
    service.clock.advance(2 * HOUR)                      # 22 h before nextUpdate
    report = agent.run_once()
    assert {a.target for a in report.alarms} == {"CRL of intermediate"}   # the root's lives a year


def test_expired_certificate_without_successor_is_reported(lab):
    service, lifetimes, _ = lab
    service.clock.advance(29 * DAY + 23 * HOUR)
    service.ca_files.load = _refusing_load
    agent = LocalAgent(service, no_passphrase)
    report = agent.run_once()
    assert {a.kind for a in report.actions} >= {"retry", "expiring"}
    assert all("last failure: the CA key cannot be used" in a.line() for a in report.actions if a.kind == "expiring")
    service.clock.advance(2 * HOUR)                      # expired now
    report = agent.run_once()
    expired = [a.line() for a in report.actions if a.kind == "expired"]
    assert len(expired) == 3 and all("without a renewal" in line for line in expired)


def test_loop_sleeps_until_the_next_due_time(lab):
    service, lifetimes, _ = lab
    wakes = []

    def wait(seconds):
        service.clock.advance(dt.timedelta(seconds=seconds))
        wakes.append(service.clock.now())
        return len(wakes) >= 30 * 24 + 10

    renewed_at = sorted(due_time(service, name) for name in lifetimes)
    lines = []
    run_loop(LocalAgent(service, no_passphrase), wait=wait, log=lines.append)
    # every certificate was renewed at its due time: the loop woke exactly then
    for due in renewed_at:
        assert any(abs(wake - due) < dt.timedelta(seconds=1) for wake in wakes), due
    assert sum(line.startswith("renewed:") for line in lines) == 3
    assert max(b - a for a, b in zip(wakes, wakes[1:])) <= HOUR


# --- the CLI --------------------------------------------------------------------------

def test_once_exit_codes_and_json(cli, tmp_path):
    home = new_home(tmp_path / "home", "--no-passphrase")
    assert cli("--home", home, "issue", "client", "alice", "--days", "1", "--out", tmp_path / "alice").code == 0
    # a 24 h certificate just issued: not due, not within a quarter of its life of expiry
    result = cli("--home", home, "agent", "--once", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["renewed"] == 0 and data["alarms"] == []
    assert {a["action"] for a in data["actions"]} == {"crl"}
    assert data["next_wake"] is not None
    result = cli("--home", home, "agent", "--once")
    assert result.code == 0 and result.out == "" and result.err == ""


def test_once_exits_1_naming_what_expires(cli, tmp_path):
    secret = tmp_path / "pass"
    secret.write_text("once exit code passphrase\n")
    secret.chmod(0o600)
    home = new_home(tmp_path / "home", "--passphrase-file", str(secret))
    service = service_at(home, dt.datetime.now(dt.timezone.utc) - 23 * HOUR)
    service._authority = service.ca_files.load(passphrase_source(secret))
    issue_fleet(service, tmp_path / "fleet", {1: 1})     # issued 23 h ago: 1 h left
    result = cli("--home", home, "agent", "--once", "--json", "--passphrase-file", tmp_path / "missing")
    assert result.code == 1
    data = json.loads(result.out)
    assert [a["action"] for a in data["alarms"]] == ["expiring"]
    assert any(a["action"] == "retry" and "CA key cannot be used" in a["detail"] for a in data["actions"]), data
    assert "error: 1 certificate(s) expire within a day or have expired: d1-0000" in result.err
    # run again at once: no new attempt before the backoff says so, still exit 1, said in words
    result = cli("--home", home, "agent", "--once", "--passphrase-file", tmp_path / "missing")
    assert result.code == 1
    assert "expiring: d1-0000 serial:" in result.err and "retry:" not in result.out
    # with the passphrase: renewed, exit 0
    result = cli("--home", home, "agent", "--once", "--passphrase-file", secret)
    assert result.code == 0, result.err
    assert "renewed: d1-0000 serial:" in result.out


def test_loop_stops_cleanly_on_sigterm(tmp_path):
    home = new_home(tmp_path / "home", "--no-passphrase")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLSKIT_")}
    env["PYTHONPATH"] = SRC
    process = subprocess.Popen([sys.executable, "-m", "mtlskit", "--home", str(home), "agent"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = process.stdout.readline()              # the first pass logged its CRLs
        assert " crl: CRL of " in first
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "agent: stopped after 1 pass(es)" in out
