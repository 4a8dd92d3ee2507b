"""Which committed CRLs have been published (written to HOME/crl/ and every deployment).

A CRL is signed and stored in the transaction that revokes; its files are written after
the commit and can fail (a read-only or full disk). Such a CRL stays *pending* until a
later publication succeeds: `revoke`, `crl` and `serve` at start publish it.
"""

from __future__ import annotations

from mtlskit.store.inventory import Inventory
from mtlskit.store.locks import lock_crls


def pending_crls(inventory: Inventory) -> dict[str, bytes]:
    """The stored CRL (DER) of each CA whose newest CRL was never published, by CA name."""
    with inventory.read() as tx:
        return dict(tx.all("SELECT issuer, der FROM crl_state WHERE der IS NOT NULL"
                           " AND (published_number IS NULL OR published_number < crl_number)"))


def stored_crls(inventory: Inventory) -> dict[str, bytes]:
    """The last CRL stored for each CA that has one (DER), by CA name."""
    with inventory.read() as tx:
        return dict(tx.all("SELECT issuer, der FROM crl_state WHERE der IS NOT NULL"))


def mark_published(inventory: Inventory, numbers: dict[str, int | None]) -> None:
    """Record that CRL number ``numbers[ca]`` of each CA reached every place it goes
    (never moves backwards: a slower publisher of an older CRL changes nothing)."""
    with inventory.transaction() as tx:
        # PostgreSQL: the CRL lock before any crl_state row, as every CRL signer takes it
        # (rows locked in another order here deadlocked with a concurrent publication)
        lock_crls(tx)
        for issuer, number in numbers.items():
            if number is None:
                continue
            tx.execute("UPDATE crl_state SET published_number = ?"
                       " WHERE issuer = ? AND (published_number IS NULL OR published_number < ?)",
                       (number, issuer, number))
