"""The bearer token /metrics may require: a file named by the ``metrics_token_file`` setting.

Made by the operator (e.g. ``openssl rand -hex 32 > FILE; chmod 600 FILE``) and shared with
Prometheus (``authorization: {credentials_file: FILE}`` in its scrape config). It is
never printed, logged or put in an error message: only its path is.
"""

from __future__ import annotations

import os
from pathlib import Path

from mtlskit.errors import BadInput

MAX_OCTETS = 4096


def load_metrics_token(path: Path) -> str:
    """The token in ``path``.

    Raises:
        BadInput: unreadable, not ASCII, empty, too large, or readable by group or others.
    """
    hint = "the metrics_token_file setting names a file of one line, mode 0600"
    try:
        mode = os.stat(path).st_mode
        raw = path.read_bytes()[:MAX_OCTETS + 1]
        text = raw.decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the metrics token file {path}: {getattr(exc, 'strerror', None) or 'not ASCII'}",
                       hint=hint) from None
    if mode & 0o077:
        raise BadInput(f"the metrics token file {path} is readable by others (mode {mode & 0o777:04o})",
                       hint=f"chmod 600 {path}")
    if not text or len(raw) > MAX_OCTETS or any(c.isspace() for c in text):
        raise BadInput(f"the metrics token file {path} must hold one token (no spaces, at most {MAX_OCTETS} bytes)",
                       hint=hint)
    return text
