"""Keeping CRLs fresh from a long-running process (`mtlskit serve`).

A CRL past its nextUpdate makes Nginx, Apache and HAProxy refuse every client, so the
service re-publishes each CA's CRL once half of its lifetime has passed (and publishes
the missing ones at start), in a background thread so that OCSP keeps answering while a
large CRL is signed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Callable

from mtlskit.publish import crls
from mtlskit.publish.delivery import publish_pending

log = logging.getLogger("mtlskit.serve")
CHECK_EVERY = dt.timedelta(minutes=10)


class CrlRefresher:
    def __init__(self, service, authority, check_every: dt.timedelta = CHECK_EVERY,
                 refresh_staples: Callable[[object], list[str]] | None = None) -> None:
        self.service, self.authority = service, authority
        self._refresh_staples = refresh_staples   # deploy.refresh.refresh_staples, wired by the composition root
        self.check_every = check_every
        self._last_check: dt.datetime | None = None
        self._busy = threading.Lock()

    def publish_due(self) -> list[str]:
        """Publish the CRLs that are missing or past half their lifetime, and those
        committed but never published (a failed write); return their CA names."""
        routine = crls.routine_names(self.service, self.authority, only_due=True)
        if routine.notice:
            log.warning("%s", routine.notice)
        due = routine.names
        if due:
            crls.publish(self.service, self.authority, due)   # stages the pending ones too
        pending, delivery = publish_pending(self.service, crls.refresh_deployments)
        if delivery is not None and delivery.error is not None:
            log.error("the CRL of %s is still pending: %s", ", ".join(pending), delivery.error)
        return sorted(set(due) | set(pending))

    def tick(self) -> threading.Thread | None:
        """Called periodically: at most once per `check_every`, publish in the background."""
        now = self.service.clock.now()
        if self._last_check is not None and now - self._last_check < self.check_every:
            return None
        if not self._busy.acquire(blocking=False):
            return None
        self._last_check = now
        thread = threading.Thread(target=self._run, name="crl-refresh", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        try:
            published = self.publish_due()
            if published:
                log.warning("re-published the CRL of %s before it went stale", ", ".join(published))
            for line in self._refresh_staples(self.service) if self._refresh_staples else []:
                log.warning("%s", line)
        except Exception as exc:  # keep serving; say why the CRLs were not refreshed
            log.error("could not refresh the CRLs: %s", getattr(exc, "message", type(exc).__name__))
        finally:
            self._busy.release()
