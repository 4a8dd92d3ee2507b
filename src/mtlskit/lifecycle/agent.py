"""The agent: renew what is due, keep the CRLs fresh, deliver them, remember failures.

``run_once`` is one pass (what `mtlskit agent --once` runs from cron or a systemd timer);
``run_loop`` repeats it, sleeping until the next thing is due. Scheduling is
``mtlskit.lifecycle.plan`` (pure); renewal is the renew workflow
(``mtlskit.lifecycle.renew.renew_certificates``, which also installs renewed server
certificates into their deployments); CRLs are signed and delivered by the same
``mtlskit.publish.crls.publish`` that `mtlskit crl` and `revoke` use, so deployments get
them the same way. The CA key is loaded only when something must be signed, and dropped
after the pass.

When the CA key cannot be loaded (its file unreadable, the passphrase file missing), that
is one failure of the agent, not one per certificate: attempts follow the backoff, and
between them the loop wakes every CA_CHECK_EVERY to look (a stat, nothing decrypted)
whether the files are back; once they are, it tries at once, so the backoff cap never
delays recovery. Other failures (a directory that cannot be written, a locked inventory)
are per certificate and follow the backoff alone.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Callable

from mtlskit.errors import MtlskitError
from mtlskit.lifecycle import plan
from mtlskit.lifecycle.agent_report import (ALARM, ALARM_KINDS, Action, Kind, Report,  # noqa: F401 (public here)
                                            alarm_window, reason_of)
from mtlskit.lifecycle.agent_state import STATE_FILE, Failure, load_state, save_state

#: a sleeping agent looks again at least this often
LONGEST_SLEEP = dt.timedelta(hours=1)
#: while the CA is down, how often the loop checks whether it is back (no signing)
CA_CHECK_EVERY = dt.timedelta(seconds=30)
#: after a pass that failed as a whole (the inventory unreadable, say), the next one
PASS_RETRY = dt.timedelta(minutes=1)
#: a certificate that expired without a successor is reported on every pass this long
EXPIRED_REPORTED = dt.timedelta(days=7)
#: the failure entry of the CA key itself (the others are "issuer:serial")
CA_KEY = "ca"


class CaUnavailable(MtlskitError):
    """The CA could not be used at all (key unreadable, no passphrase, inventory locked)."""

    code = "ca-unavailable"
    exit_code = 1


def _key(record) -> str:
    return f"{record.issuer}:{record.serial_hex}"


def _target(record) -> str:
    return f"{record.name} serial:{record.serial_hex}"


class LocalAgent:
    """The agent of a CA home: signs renewals and CRLs itself.

    Args:
        service: the composition root (inventory, clock, settings, CA files).
        passphrase_source: () -> bytes | None, as the CLI builds it (file, env, prompt).
        passphrase_file: the file behind ``passphrase_source``, if any (only looked at,
            to notice when it comes back).
        renew: the renew workflow (default: ``mtlskit.lifecycle.renew.renew_certificates``).
        state_path: the failure file (default: HOME/agent-state.json).
    """

    def __init__(self, service, passphrase_source: Callable[[], bytes | None], *,
                 passphrase_file: Path | None = None, renew=None, state_path: Path | None = None) -> None:
        self.service = service
        self.passphrase_source = passphrase_source
        self.passphrase_file = passphrase_file
        self._renew = renew
        self.state_path = state_path or service.settings.home / STATE_FILE

    def clock_now(self) -> dt.datetime:
        return self.service.clock.now()

    # --- one pass -----------------------------------------------------------------------

    def run_once(self) -> Report:
        """Renew what is due, re-sign the CRLs past half their life, deliver pending ones."""
        now = self.service.clock.now()
        report = Report()
        failures = load_state(self.state_path)
        before = _snapshot(failures)
        records = self._owned(now)
        failures = self._keep_known(failures, {_key(r) for r in records}, now, report)
        ca = CaAccess(self, failures, now, report)
        due = [r for r in records if self._attempt_now(r, failures.get(_key(r)), now)]
        renewed = self._renew_due(due, failures, ca, now, report) if due else {}
        self._refresh_crls(ca, now, report)
        if _snapshot(failures) != before:     # most passes change nothing: no write, no fsync
            save_state(self.state_path, failures)
        current = [renewed.get(_key(r), r) for r in records]
        self._plan_next(current, failures, now, report)
        return report

    def _owned(self, now: dt.datetime) -> list:
        """What the agent keeps fresh: what `renew --all` renews (live certificates with a
        recorded directory, and server certificates `deploy` issued into its deployments)."""
        from mtlskit.lifecycle.renew import select

        return select(self.service, (), every=True, now=now)

    def _attempt_now(self, record, failure: Failure | None, now: dt.datetime) -> bool:
        if not plan.is_due(record.serial, record.not_before, record.not_after, now):
            return False
        return failure is None or failure.next_attempt is None or now >= failure.next_attempt

    def load_authority(self):
        """The CA with its keys, loaded now (the agent keeps it for one pass only).

        Raises:
            CaUnavailable: a key cannot be read or decrypted.
        """
        try:
            return self.service.ca_files.load(self.passphrase_source)
        except (MtlskitError, OSError) as exc:
            raise CaUnavailable(f"the CA key cannot be used: {reason_of(exc)}") from None

    def ca_files_readable(self) -> bool:
        """Whether the issuing CA key and the passphrase file can be read (a stat and an
        access check, nothing decrypted): how the agent notices the CA coming back."""
        files = self.service.ca_files
        name = "intermediate" if files.certificate_path("intermediate").exists() else "root"
        paths = [files.key_path(name), *([self.passphrase_file] if self.passphrase_file else [])]
        return all(os.access(path, os.R_OK) for path in paths)

    def _renew_due(self, due, failures, ca: "CaAccess", now, report: Report) -> dict:
        """Renew ``due``; returns the new records by the key of the ones they replace."""
        authority = ca.get(soonest=min(due, key=lambda r: r.not_after))
        if authority is None:   # remembered as waiting for the CA (reported if they expire so)
            reason = failures[CA_KEY].reason if CA_KEY in failures else "waiting for the CA key"
            for record in due:
                previous = failures.get(_key(record))
                failures[_key(record)] = Failure(previous.failures if previous else 0, None, reason,
                                                 target=_target(record), expires=record.not_after)
            return {}
        renewed = {}
        for record, outcome in self._renew_each(authority, due):
            if isinstance(outcome, str):
                self._failed(record, outcome, failures, now, report)
            else:
                failures.pop(_key(record), None)
                renewed[_key(record)] = outcome.new
                report.add(Action(Kind.RENEWED, _target(record), f"new serial:{outcome.new.serial_hex}, valid "
                                  f"until {outcome.new.not_after:%Y-%m-%dT%H:%M:%SZ}, in {outcome.directory}"))
                for line in outcome.deployments:
                    report.add(Action(Kind.DEPLOYED, _target(outcome.new), line))
        return renewed

    def _renew_each(self, authority, due):
        """(record, Renewal or reason) for each due record: the whole batch in one call,
        and one at a time when the batch fails (so one bad directory fails alone)."""
        renew = self._renew_function()
        try:
            renewals = {_key(r.old): r for r in renew(self.service, authority, due)}
            return [(record, renewals.get(_key(record), "not renewed by the renew workflow")) for record in due]
        except Exception as batch_error:   # noqa: BLE001 - isolated below, record by record
            if len(due) == 1:
                return [(due[0], reason_of(batch_error))]
        results = []
        for record in due:
            try:
                results.append((record, renew(self.service, authority, [record])[0]))
            except Exception as exc:   # noqa: BLE001 - reported per certificate, never lost
                results.append((record, reason_of(exc)))
        return results

    def _renew_function(self):
        if self._renew is None:
            from mtlskit.lifecycle.renew import renew_certificates

            self._renew = renew_certificates
        return self._renew

    def _failed(self, record, reason: str, failures, now, report: Report) -> None:
        previous = failures.get(_key(record))
        count = (previous.failures if previous else 0) + 1
        retry = plan.next_attempt(count, now, record.not_before, record.not_after)
        failures[_key(record)] = Failure(count, retry.at, reason, target=_target(record),
                                         expires=record.not_after)
        if retry.expired:
            report.add(Action(Kind.EXPIRED, _target(record), f"not renewed before expiry: {reason}"))
        elif retry.at_risk:
            report.add(Action(Kind.FAILED, _target(record), f"attempt {count} failed: {reason}; last retry "
                              f"before expiry at {retry.at:%Y-%m-%dT%H:%M:%SZ}, expires "
                              f"{record.not_after:%Y-%m-%dT%H:%M:%SZ}", retry.at))
        else:
            report.add(Action(Kind.RETRY, _target(record), f"attempt {count} failed: {reason}", retry.at))

    def _keep_known(self, failures: dict[str, Failure], live: set[str], now, report: Report) -> dict:
        """The failures of live certificates, and of those that expired without a successor
        (reported on every pass for a week); failures of certificates renewed or revoked
        elsewhere are forgotten."""
        kept = {}
        for key, failure in failures.items():
            if key == CA_KEY or key in live:
                kept[key] = failure
            elif failure.expires is not None and failure.expires <= now < failure.expires + EXPIRED_REPORTED:
                kept[key] = failure
                report.add(Action(Kind.EXPIRED, failure.target or key, f"expired {failure.expires:%Y-%m-%dT%H:%M:%SZ} "
                                  f"without a renewal: {failure.reason}"))
        return kept

    # --- CRLs ---------------------------------------------------------------------------

    def _refresh_crls(self, ca: "CaAccess", now: dt.datetime, report: Report) -> None:
        from mtlskit.publish import crls
        from mtlskit.publish.delivery import publish_pending

        stored = crls.published(self.service)
        due = [name for name in crls.chain_names(self.service)
               if plan.crl_is_due(*_crl_times(stored.get(name)), now)]
        if due:
            authority = ca.get(soonest=None)
            if authority is None:
                report.add(Action(Kind.CRL_FAILED, f"CRL of {', '.join(due)}", "waiting for the CA key"))
                return
            try:
                result = crls.publish(self.service, authority, due)
            except (MtlskitError, OSError) as exc:
                report.add(Action(Kind.CRL_FAILED, f"CRL of {', '.join(due)}", reason_of(exc)))
                return
            published = crls.published(self.service)
            for name in due:
                report.add(Action(Kind.CRL, f"CRL of {name}", f"re-signed: number {published[name]['crl_number']}, "
                                  f"next update {published[name]['next_update']:%Y-%m-%dT%H:%M:%SZ}"))
            if result.error:
                report.add(Action(Kind.CRL_FAILED, "CRL files", result.error))
            self._report_deployments(result.deployments, report)
            return
        pending, delivery = publish_pending(self.service, crls.refresh_deployments)
        if delivery is not None:
            report.add(Action(Kind.DEPLOYMENTS, f"CRL of {', '.join(pending)}",
                              delivery.error or "pending CRL delivered"))
            self._report_deployments(delivery.deployments, report)

    def _report_deployments(self, results, report: Report) -> None:
        for result in results or []:
            if not result.ok:
                report.add(Action(Kind.DEPLOYMENTS, f"{result.server} {result.directory}", result.message))

    # --- what comes next ----------------------------------------------------------------

    def _plan_next(self, records, failures: dict[str, Failure], now: dt.datetime, report: Report) -> None:
        """When each certificate and CRL is next due; which certificates expire too soon.

        While the CA key waits (its own backoff), what is overdue waits with it: the next
        wake is the CA's next attempt, or its next look at the files, whichever is first.
        """
        from mtlskit.publish import crls

        ca = failures.get(CA_KEY)
        wakes = []
        for record in records:
            failure = failures.get(_key(record))
            due = plan.renew_at(record.serial, record.not_before, record.not_after)
            wakes.append(max(due, failure.next_attempt) if failure and failure.next_attempt else due)
            span = plan.lifetime(record.not_before, record.not_after)
            if plan.expires_within(record.not_after, now, alarm_window(span)):
                cause = failure or (ca if due <= now else None)
                report.add(Action(Kind.EXPIRING, _target(record), f"expires {record.not_after:%Y-%m-%dT%H:%M:%SZ}"
                                  + (f"; last failure: {cause.reason}" if cause else "")))
        for name, state in crls.published(self.service).items():
            if state["this_update"] and state["next_update"]:
                wakes.append(plan.crl_refresh_at(state["this_update"], state["next_update"]))
                if plan.expires_within(state["next_update"], now, ALARM):   # servers refuse every client after
                    report.add(Action(Kind.EXPIRING, f"CRL of {name}",
                                      f"next update {state['next_update']:%Y-%m-%dT%H:%M:%SZ}; not re-signed"))
        if ca is not None and ca.next_attempt is not None:
            wakes = [t for t in wakes if t > now]
            wakes.append(min(ca.next_attempt, now + CA_CHECK_EVERY))
        report.wake_at.extend(wakes)


class CaAccess:
    """The CA key for one pass: loaded at most once, and only when something must be
    signed. When it cannot be loaded, that is one failure of the agent (not one per
    certificate): attempts follow the backoff (planned against the soonest-expiring
    certificate waiting); between them, each pass only checks whether the key and
    passphrase files became readable again, and if they did after being seen missing,
    tries at once.
    """

    def __init__(self, agent: LocalAgent, failures: dict[str, Failure], now: dt.datetime, report: Report) -> None:
        self.agent, self.failures, self.now, self.report = agent, failures, now, report
        self._authority = None
        self._tried = False

    def get(self, soonest):
        """The authority, or None (failure recorded and reported, or still waiting)."""
        if self._authority is not None or self._tried:
            return self._authority
        state = self.failures.get(CA_KEY)
        if state is not None and state.next_attempt is not None and self.now < state.next_attempt \
                and not self._back(state):
            return None
        self._tried = True
        try:
            self._authority = self.agent.load_authority()
        except CaUnavailable as exc:
            self._failed(state, exc.message, soonest)
            return None
        self.failures.pop(CA_KEY, None)
        return self._authority

    def _back(self, state: Failure) -> bool:
        if not self.agent.ca_files_readable():
            state.saw_down = True         # seen missing: its return is worth an early attempt
            return False
        return state.saw_down

    def _failed(self, state: Failure | None, reason: str, soonest) -> None:
        count = (state.failures if state else 0) + 1
        if soonest is not None:
            retry = plan.next_attempt(count, self.now, soonest.not_before, soonest.not_after)
            at = retry.at or self.now + plan.retry_delay(count, plan.lifetime(soonest.not_before, soonest.not_after))
        else:   # only CRLs wait: back off as for the CRL's own lifetime (days)
            at = self.now + plan.retry_delay(count, dt.timedelta(days=self.agent.service.settings.crl_days))
        self.failures[CA_KEY] = Failure(count, at, reason, target="CA key")
        self.report.ca_down = True
        self.report.add(Action(Kind.RETRY, "CA key", f"attempt {count} failed: {reason}", at))


def _snapshot(failures: dict[str, Failure]) -> dict:
    return {key: failure.to_json() for key, failure in failures.items()}


def _crl_times(state: dict | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    return (state["this_update"], state["next_update"]) if state else (None, None)


def run_loop(agent, *, wait: Callable[[float], bool], log: Callable[[str], None],
             longest: dt.timedelta = LONGEST_SLEEP) -> int:
    """Run passes until ``wait`` reports a stop; returns the number of passes.

    Args:
        wait: (seconds) -> bool; sleeps up to that long and returns True when asked to
            stop (``threading.Event.wait`` of an event set by SIGTERM/SIGINT; tests pass a
            function that moves a fixed clock).
        log: takes each action's line; an alarm (expiring, expired) already logged is
            repeated once per ``longest``, not on every pass.
    """
    passes = 0
    alarms_logged: dict[str, dt.datetime] = {}
    while True:
        try:
            report = agent.run_once()
        except Exception as exc:   # noqa: BLE001 - a long-running agent survives a bad pass
            report = Report([Action(Kind.FAILED, "agent pass", reason_of(exc))], [agent.clock_now() + PASS_RETRY])
        passes += 1
        now = agent.clock_now()
        for action in report.actions:
            if action.kind in ALARM_KINDS:
                last = alarms_logged.get(action.line())
                if last is not None and now - last < longest:
                    continue
                alarms_logged[action.line()] = now
            log(action.line())
        wake = plan.next_wake(report.wake_at, now, longest)
        if wait(max((wake - now).total_seconds(), 1.0)):
            return passes


def stop_event_on_signals() -> threading.Event:
    """An event set by SIGTERM and SIGINT (the loop wakes at once and exits cleanly)."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
