"""Who is making the changes of this thread: the ``by`` of every audit event it records.

The service sets it around each workflow it runs for an authenticated caller
(``"token:<name>"``, ``"certificate:<name>"``, ``"session:<name>"``); every audit event
written meanwhile (:func:`mtlskit.store.inventory.audit_values`) carries it in its detail,
in the same transaction as the change. Unset (the CLI on the CA host): no ``by``.

A context variable, not a parameter: the workflows (issue, sign, renew, revoke, CRL
publication, deployment refresh) write their events deep down, and the same functions
serve the CLI, where nobody is "by" anyone.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

_ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("mtlskit_actor", default=None)


@contextlib.contextmanager
def acting_as(by: str) -> Iterator[None]:
    """Within the block, every audit event records ``"by": by``."""
    reset = _ACTOR.set(by)
    try:
        yield
    finally:
        _ACTOR.reset(reset)


def current_actor() -> str | None:
    return _ACTOR.get()


def stamped(detail: dict) -> dict:
    """``detail`` with the current actor as ``by`` (unchanged when there is none)."""
    by = _ACTOR.get()
    return detail if by is None else {**detail, "by": by}
