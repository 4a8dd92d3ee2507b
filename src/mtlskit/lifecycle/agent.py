"""The agent: renew what is due, keep the CRLs fresh, deliver them, remember failures.

``run_once`` is one pass (what `mtlskit agent --once` runs from cron or a systemd timer);
``run_loop`` repeats it, sleeping until the next thing is due. Scheduling is
``mtlskit.lifecycle.plan`` (pure); renewal is the renew workflow
(``mtlskit.lifecycle.renew.renew_certificates``, which also installs renewed server
certificates into their deployments); CRLs are signed and delivered by the same
``mtlskit.publish.crls.publish`` that `mtlskit crl` and `revoke` use, so deployments get
them the same way. The CA key is loaded only when something must be signed, and dropped
after the pass.

When the CA key cannot be loaded (its file unreadable, the passphrase file missing)
every due certificate fails with ``ca_down``; backoff applies, and while any waits, the
loop wakes every CA_CHECK_EVERY to try loading the key (signing nothing): once it loads,
they are all renewed at once, so the backoff cap never delays recovery. Other failures
(a directory that cannot be written, a locked inventory) follow the backoff alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from pathlib import Path
from typing import Callable

from mtlskit.errors import MtlskitError
from mtlskit.lifecycle import plan
from mtlskit.lifecycle.agent_state import STATE_FILE, Failure, load_state, save_state

#: a sleeping agent looks again at least this often
LONGEST_SLEEP = dt.timedelta(hours=1)
#: while the CA is down, how often the loop checks whether it is back (no signing)
CA_CHECK_EVERY = dt.timedelta(seconds=30)
#: `--once` fails when something it owns expires within this (or within a quarter of its
#: lifetime, for certificates shorter than four days: a 24 h certificate always has a day)
ALARM = dt.timedelta(days=1)
#: a certificate that expired without a successor is reported on every pass this long
EXPIRED_REPORTED = dt.timedelta(days=7)
#: actions that make `--once` exit 1
ALARM_KINDS = ("expiring", "expired")


class CaUnavailable(MtlskitError):
    """The CA could not be used at all (key unreadable, no passphrase, inventory locked)."""

    code = "ca-unavailable"
    exit_code = 1


@dataclasses.dataclass(frozen=True)
class Action:
    """One thing the agent did or found; ``line()`` is its log line."""

    kind: str                 # renewed | retry | failed | expired | expiring | crl | crl-failed | deployments
    target: str               # NAME serial:HEX, or "CRL of <ca>"
    detail: str
    at: dt.datetime | None = None

    def line(self) -> str:
        when = f" at {self.at:%Y-%m-%dT%H:%M:%SZ}" if self.at else ""
        return f"{self.kind}: {self.target}{when}: {self.detail}"

    def to_json(self) -> dict:
        return {"action": self.kind, "target": self.target, "detail": self.detail, "at": self.at}


@dataclasses.dataclass
class Report:
    """What one pass did, and when the next one is needed."""

    actions: list[Action] = dataclasses.field(default_factory=list)
    wake_at: list[dt.datetime] = dataclasses.field(default_factory=list)
    ca_down: bool = False

    @property
    def alarms(self) -> list[Action]:
        return [a for a in self.actions if a.kind in ALARM_KINDS]

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def to_json(self) -> dict:
        return {"actions": [a.to_json() for a in self.actions],
                "renewed": sum(a.kind == "renewed" for a in self.actions),
                "failed": sum(a.kind in ("retry", "failed") for a in self.actions),
                "alarms": [a.to_json() for a in self.alarms],
                "next_wake": min(self.wake_at) if self.wake_at else None}


def _key(record) -> str:
    return f"{record.issuer}:{record.serial_hex}"


def _target(record) -> str:
    return f"{record.name} serial:{record.serial_hex}"


def alarm_window(span: dt.timedelta) -> dt.timedelta:
    """How close to expiry a certificate makes `--once` fail."""
    return min(ALARM, span / 4)


class LocalAgent:
    """The agent of a CA home: signs renewals and CRLs itself.

    Args:
        service: the composition root (inventory, clock, settings, CA files).
        passphrase_source: () -> bytes | None, as the CLI builds it (file, env, prompt).
        renew: the renew workflow (default: ``mtlskit.lifecycle.renew.renew_certificates``).
        state_path: the failure file (default: HOME/agent-state.json).
    """

    def __init__(self, service, passphrase_source: Callable[[], bytes | None], *,
                 renew=None, state_path: Path | None = None) -> None:
        self.service = service
        self.passphrase_source = passphrase_source
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
        records = self.service.inventory.renewable(now)
        live = {_key(r) for r in records}
        failures = self._keep_known(failures, live, now, report)
        authority = self._authority_if_back(failures, now)
        due = [r for r in records if self._attempt_now(r, failures.get(_key(r)), now)]
        renewed = self._renew_due(due, failures, authority, now, report) if due else {}
        self._refresh_crls(now, report)
        save_state(self.state_path, failures)
        current = [renewed.get(_key(r), r) for r in records]
        self._plan_next(current, failures, now, report)
        return report

    def _attempt_now(self, record, failure: Failure | None, now: dt.datetime) -> bool:
        if not plan.is_due(record.serial, record.not_before, record.not_after, now):
            return False
        return failure is None or failure.next_attempt is None or now >= failure.next_attempt

    def _authority_if_back(self, failures: dict[str, Failure], now: dt.datetime):
        """While certificates wait for a CA key that could not be loaded: try loading it
        (signing nothing); when it loads, every one of them is tried now, whatever its
        backoff says (the cap must not delay recovery)."""
        waiting = [f for f in failures.values() if f.ca_down and f.next_attempt and f.next_attempt > now]
        if not waiting:
            return None
        try:
            authority = self._load_authority()
        except CaUnavailable:
            return None
        for failure in waiting:
            failure.next_attempt = now
        return authority

    def _load_authority(self):
        try:
            return self.service.ca_files.load(self.passphrase_source)
        except (MtlskitError, OSError) as exc:
            raise CaUnavailable(f"the CA key cannot be used: {_reason(exc)}") from None

    def _renew_due(self, due, failures, authority, now, report: Report) -> dict:
        """Renew ``due``; returns the new records by the key of the ones they replace."""
        try:
            authority = authority or self._load_authority()
        except CaUnavailable as exc:
            for record in due:
                self._failed(record, exc.message, True, failures, now, report)
            report.ca_down = True
            return {}
        renewed = {}
        for record, outcome in self._renew_each(authority, due):
            if isinstance(outcome, str):   # not ca_down: a key that loads is no sign of recovery
                self._failed(record, outcome, False, failures, now, report)
            else:
                failures.pop(_key(record), None)
                renewed[_key(record)] = outcome.new
                report.add(Action("renewed", _target(record), f"new serial:{outcome.new.serial_hex}, valid "
                                  f"until {outcome.new.not_after:%Y-%m-%dT%H:%M:%SZ}, in {outcome.directory}"))
        return renewed

    def _renew_each(self, authority, due):
        """(record, Renewal or reason) for each due record: the whole batch in one call,
        and one at a time when the batch fails (so one bad directory fails alone)."""
        renew = self._renew_function()
        try:
            renewals = renew(self.service, authority, due)
            return list(zip(due, renewals))
        except Exception as batch_error:   # noqa: BLE001 - isolated below, record by record
            if len(due) == 1:
                return [(due[0], _reason(batch_error))]
        results = []
        for record in due:
            try:
                results.append((record, renew(self.service, authority, [record])[0]))
            except Exception as exc:   # noqa: BLE001 - reported per certificate, never lost
                results.append((record, _reason(exc)))
        return results

    def _renew_function(self):
        if self._renew is None:
            from mtlskit.lifecycle.renew import renew_certificates

            self._renew = renew_certificates
        return self._renew

    def _failed(self, record, reason: str, ca_down: bool, failures, now, report: Report) -> None:
        previous = failures.get(_key(record))
        count = (previous.failures if previous else 0) + 1
        retry = plan.next_attempt(count, now, record.not_before, record.not_after)
        failures[_key(record)] = Failure(count, retry.at, reason, ca_down, target=_target(record),
                                         expires=record.not_after)
        if retry.expired:
            report.add(Action("expired", _target(record), f"not renewed before expiry: {reason}"))
        elif retry.at_risk:
            report.add(Action("failed", _target(record), f"attempt {count} failed: {reason}; last retry "
                              f"before expiry at {retry.at:%Y-%m-%dT%H:%M:%SZ}, expires "
                              f"{record.not_after:%Y-%m-%dT%H:%M:%SZ}", retry.at))
        else:
            report.add(Action("retry", _target(record), f"attempt {count} failed: {reason}", retry.at))

    def _keep_known(self, failures: dict[str, Failure], live: set[str], now, report: Report) -> dict:
        """The failures of live certificates, and of those that expired without a successor
        (reported on every pass for a week); failures of certificates renewed or revoked
        elsewhere are forgotten."""
        kept = {}
        for key, failure in failures.items():
            if key in live:
                kept[key] = failure
            elif failure.expires is not None and failure.expires <= now < failure.expires + EXPIRED_REPORTED:
                kept[key] = failure
                report.add(Action("expired", failure.target or key, f"expired {failure.expires:%Y-%m-%dT%H:%M:%SZ} "
                                  f"without a renewal: {failure.reason}"))
        return kept

    # --- CRLs ---------------------------------------------------------------------------

    def _refresh_crls(self, now: dt.datetime, report: Report) -> None:
        from mtlskit.publish import crls
        from mtlskit.publish.delivery import publish_pending

        stored = crls.published(self.service)
        due = [name for name in crls.chain_names(self.service)
               if plan.crl_is_due(*_crl_times(stored.get(name)), now)]
        if due:
            try:
                result = crls.publish(self.service, self._load_authority(), due)
            except (MtlskitError, OSError) as exc:
                report.add(Action("crl-failed", f"CRL of {', '.join(due)}", _reason(exc)))
                report.ca_down = True
                return
            published = crls.published(self.service)
            for name in due:
                report.add(Action("crl", f"CRL of {name}", f"re-signed: number {published[name]['crl_number']}, "
                                  f"next update {published[name]['next_update']:%Y-%m-%dT%H:%M:%SZ}"))
            if result.error:
                report.add(Action("crl-failed", "CRL files", result.error))
            self._report_deployments(result.deployments, report)
            return
        pending, delivery = publish_pending(self.service, crls.refresh_deployments)
        if delivery is not None:
            report.add(Action("deployments", f"CRL of {', '.join(pending)}",
                              delivery.error or "pending CRL delivered"))
            self._report_deployments(delivery.deployments, report)

    def _report_deployments(self, results, report: Report) -> None:
        for result in results or []:
            if not result.ok:
                report.add(Action("deployments", f"{result.server} {result.directory}", result.message))

    # --- what comes next ----------------------------------------------------------------

    def _plan_next(self, records, failures: dict[str, Failure], now: dt.datetime, report: Report) -> None:
        """When each certificate and CRL is next due; which certificates expire too soon."""
        from mtlskit.publish import crls

        for record in records:
            failure = failures.get(_key(record))
            due = plan.renew_at(record.serial, record.not_before, record.not_after)
            report.wake_at.append(max(due, failure.next_attempt) if failure and failure.next_attempt else due)
            span = plan.lifetime(record.not_before, record.not_after)
            if plan.expires_within(record.not_after, now, alarm_window(span)):
                report.add(Action("expiring", _target(record), f"expires {record.not_after:%Y-%m-%dT%H:%M:%SZ}"
                                  + (f"; last failure: {failure.reason}" if failure else "")))
        for state in crls.published(self.service).values():
            if state["this_update"] and state["next_update"]:
                report.wake_at.append(plan.crl_refresh_at(state["this_update"], state["next_update"]))
        if any(f.ca_down for f in failures.values()):
            report.wake_at.append(now + CA_CHECK_EVERY)


def _crl_times(state: dict | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    return (state["this_update"], state["next_update"]) if state else (None, None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MtlskitError):
        return exc.message
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


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
        report = agent.run_once()
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
