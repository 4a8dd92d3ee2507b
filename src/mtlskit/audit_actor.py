"""Who is making the changes of the current request: the ``by`` of their audit events.

The workflows (issue, revoke) are the same for every adapter and know nothing of HTTP;
an adapter that acts for an authenticated caller wraps the call in :func:`acting_as` and
every audit event written inside it (in this thread or context) carries
``"by": "<via>:<name>"`` (PREAMBLE contract 3). The CLI sets nothing: no ``by``.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

_by: contextvars.ContextVar[str | None] = contextvars.ContextVar("mtlskit_audit_by", default=None)


@contextlib.contextmanager
def acting_as(by: str) -> Iterator[None]:
    """Within the block, audit events carry ``"by": by`` (e.g. ``session:alice``)."""
    token = _by.set(by)
    try:
        yield
    finally:
        _by.reset(token)


def current_by() -> str | None:
    """The ``by`` of the block we are in, or None."""
    return _by.get()
