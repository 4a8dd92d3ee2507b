"""Which committed CRLs have been published (written to HOME/crl/ and every deployment).

A CRL is signed and stored in the transaction that revokes; its files are written after
the commit and can fail (a read-only or full disk). Such a CRL stays *pending* until a
later publication succeeds: `revoke`, `crl` and `serve` at start publish it.
"""

from __future__ import annotations

from sqlalchemy import or_, select, update

from mtlskit.store.inventory import Inventory
from mtlskit.store.models import CrlState


def pending_crls(inventory: Inventory) -> dict[str, bytes]:
    """The stored CRL (DER) of each CA whose newest CRL was never published, by CA name."""
    with inventory.transaction() as tx:
        rows = tx.execute(select(CrlState.issuer, CrlState.der).where(
            CrlState.der.is_not(None),
            or_(CrlState.published_number.is_(None), CrlState.published_number < CrlState.crl_number)))
        return dict(rows.all())


def stored_crls(inventory: Inventory) -> dict[str, bytes]:
    """The last CRL stored for each CA that has one (DER), by CA name."""
    with inventory.transaction() as tx:
        return dict(tx.execute(select(CrlState.issuer, CrlState.der).where(CrlState.der.is_not(None))).all())


def mark_published(inventory: Inventory, numbers: dict[str, int | None]) -> None:
    """Record that CRL number ``numbers[ca]`` of each CA reached every place it goes
    (never moves backwards: a slower publisher of an older CRL changes nothing)."""
    with inventory.transaction() as tx:
        for issuer, number in numbers.items():
            if number is None:
                continue
            tx.execute(update(CrlState).where(
                CrlState.issuer == issuer,
                or_(CrlState.published_number.is_(None), CrlState.published_number < number))
                .values(published_number=number))
