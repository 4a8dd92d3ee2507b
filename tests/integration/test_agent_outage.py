"""Proof: the CA unreachable for 6 hours with 24 h certificates. Nothing expires, at most
20 renewal attempts by the agent over the outage, and every certificate is renewed
within a minute of the CA coming back.

"Unreachable" for the local agent: the CA passphrase file is gone (as when the
credential store is unmounted), so the CA key cannot be decrypted. The agent runs in
loop mode; its sleeps move a fixed clock.
"""

from __future__ import annotations

import datetime as dt
import shutil

from mtlskit.cli.common import passphrase_source
from mtlskit.lifecycle.agent import CA_CHECK_EVERY, LocalAgent, run_loop

from tests.integration.agent_support import T0, issue_fleet, names_with_a_live_certificate, new_home, service_at

HOUR, MINUTE = dt.timedelta(hours=1), dt.timedelta(minutes=1)
OUTAGE_START = T0 + 15 * HOUR + 50 * MINUTE     # just before the first is due (2/3 of 24 h, from 5 min back)
OUTAGE_END = OUTAGE_START + 6 * HOUR


class Outage:
    """Moves the clock for the loop's sleeps, and removes the passphrase file for the
    outage window (restoring it after); checks every name stays live."""

    def __init__(self, service, secret, names: int, stop_at: dt.datetime) -> None:
        self.service, self.secret, self.names, self.stop_at = service, secret, names, stop_at
        self.saved = secret.with_suffix(".away")
        self.wakes: list[dt.datetime] = []

    def wait(self, seconds: float) -> bool:
        clock = self.service.clock
        before = clock.now()
        clock.advance(dt.timedelta(seconds=seconds))
        now = clock.now()
        # the CA comes back at OUTAGE_END exactly, even in the middle of a sleep
        if before < OUTAGE_END <= now and self.saved.exists():
            shutil.move(self.saved, self.secret)
        elif OUTAGE_START <= now < OUTAGE_END and self.secret.exists():
            shutil.move(self.secret, self.saved)
        assert names_with_a_live_certificate(self.service, now) == self.names, now
        self.wakes.append(now)
        return now >= self.stop_at


def test_six_hour_outage_of_24h_certificates(tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_text("agent outage passphrase\n")
    secret.chmod(0o600)
    home = new_home(tmp_path / "home", "--passphrase-file", str(secret))
    service = service_at(home)
    service._authority = service.ca_files.load(passphrase_source(secret))   # to issue the fleet
    lifetimes = issue_fleet(service, tmp_path / "fleet", {1: 20})
    agent = LocalAgent(service, passphrase_source(secret), passphrase_file=secret)
    outage = Outage(service, secret, len(lifetimes), T0 + 30 * HOUR)
    lines: list[tuple[dt.datetime, str]] = []
    run_loop(agent, wait=outage.wait, log=lambda line: lines.append((service.clock.now(), line)))

    failed = [(at, line) for at, line in lines if line.startswith(("retry:", "failed:"))]
    renewed = [(at, line) for at, line in lines if line.startswith("renewed:")]
    assert not [line for _, line in lines if line.startswith("expired:")]
    # less than a quarter of their life left: the agent says so (once an hour), as it should
    warned = [at for at, line in lines if line.startswith("expiring:")]
    assert warned and all(at >= T0 + 17 * HOUR for at in warned)
    # the agent's attempts: each CA key load that failed is one line, the last one succeeded
    assert failed and all(line.startswith("retry: CA key at ") for _, line in failed), failed[:3]
    assert all(OUTAGE_START <= at < OUTAGE_END for at, _ in failed)
    attempts = len(failed)              # key loads during the outage (the next one succeeds)
    assert attempts <= 20
    # the first generation was renewed once the CA came back, within a minute
    first_renewals = sorted(at for at, line in renewed if at < T0 + 24 * HOUR)
    assert len(first_renewals) == len(lifetimes)
    recovery = first_renewals[-1] - OUTAGE_END
    assert OUTAGE_END <= first_renewals[0] and recovery <= dt.timedelta(minutes=1)
    # between attempts the loop looked at the files every CA_CHECK_EVERY (no key load)
    first_failure = failed[0][0]
    gaps = [b - a for a, b in zip(outage.wakes, outage.wakes[1:]) if first_failure <= a < OUTAGE_END]
    assert gaps and max(gaps) <= CA_CHECK_EVERY
    print(f"\noutage: {attempts} failed CA key loads by the agent over {OUTAGE_END - first_failure}, "
          f"{len(gaps)} wakes, every certificate renewed {recovery.total_seconds():.0f} s after the CA came back")
