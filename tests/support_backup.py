"""What the backup tests share: a writer process that issues and revokes in a loop, and
the consistency checks of a restored inventory (the same SQL on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from typing import Callable

from cryptography import x509

# `python -c WRITER HOME OUT STOPFILE`: issue, and revoke every other one, until STOPFILE exists
WRITER = r"""
import os, sys
from mtlskit.cli.app import main
home, out, stop = sys.argv[1:4]
i = 0
while not os.path.exists(stop):
    assert main(["--home", home, "issue", "client", f"w{i}", "--out", f"{out}/w{i}"]) == 0
    if i % 2:
        assert main(["--home", home, "revoke", f"w{i - 1}", "--reason", "superseded"]) == 0
    i += 1
"""

Query = Callable[[str, tuple], list[tuple]]   # SQL with ? placeholders -> rows
LAST_EVENT = "SELECT coalesce(max(id), 0) FROM audit_events"


def wait_for_writes_after(last_event: Callable[[], int], event_id: int, within: float = 30) -> int:
    """Poll until the writer has committed an audit event after ``event_id``; the newest."""
    deadline = time.monotonic() + within
    while (latest := last_event()) <= event_id:
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.02)
    return latest


def consistency_problems(query: Query) -> list[str]:
    """What makes a restored inventory not one state of the database: an audit event
    whose certificate is missing, a revoked certificate without its event, a CRL whose
    number is not the one recorded beside it or whose entries are not exactly that
    issuer's revoked certificates."""
    problems = [f"audit event without its certificate: {row}" for row in query(
        "SELECT e.id, e.action, e.issuer, e.serial FROM audit_events e WHERE e.serial IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM certificates c WHERE c.issuer = e.issuer AND c.serial = e.serial)", ())]
    problems += [f"revoked without its event: {row}" for row in query(
        "SELECT c.serial FROM certificates c WHERE c.status = 'revoked' AND NOT EXISTS (SELECT 1 FROM "
        "audit_events e WHERE e.action = 'revoke' AND e.issuer = c.issuer AND e.serial = c.serial)", ())]
    for issuer, number, der in query("SELECT issuer, crl_number, der FROM crl_state WHERE der IS NOT NULL", ()):
        crl = x509.load_der_x509_crl(bytes(der))
        if crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number != number:
            problems.append(f"{issuer}: crl_state number {number} is not its CRL's")
        listed = {format(entry.serial_number, "x") for entry in crl}
        revoked = {row[0] for row in query(
            "SELECT serial FROM certificates WHERE issuer = ? AND status = 'revoked'", (issuer,))}
        if listed != revoked:
            problems.append(f"{issuer}: CRL {number} lists {len(listed)}, the inventory has {len(revoked)} revoked")
    return problems
