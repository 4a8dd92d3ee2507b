"""Independent judges: openssl and pkilint, run on what mtlskit wrote."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

from pkilint.bin import lint_crl, lint_ocsp_response, lint_pkix_cert

_LINTERS = {"cert": lint_pkix_cert.main, "crl": lint_crl.main, "ocsp": lint_ocsp_response.main}


def pkilint(kind: str, path: Path, *extra: str) -> str:
    """Lint at WARNING and above; returns the findings text ('' when clean)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = _LINTERS[kind](["lint", "-s", "WARNING", *extra, str(path)])
    return "" if code == 0 else buffer.getvalue() or f"exit {code}"


def openssl(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], input=input, capture_output=True, timeout=60)
