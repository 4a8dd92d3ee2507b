"""Composition root: Settings -> CA files, Inventory, Clock -> the workflows' dependencies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from mtlskit.ca.home import CaFiles
from mtlskit.clock import Clock, SystemClock
from mtlskit.config import Settings
from mtlskit.store.inventory import Inventory

if TYPE_CHECKING:  # `list` and `show` never sign: no cryptography import for them (issue 12)
    from cryptography import x509

    from mtlskit.ca.authority import Authority

PassphraseSource = Callable[[], "bytes | None"]


class Service:
    """What every workflow needs, built once per process from validated settings."""

    def __init__(self, settings: Settings, clock: Clock | None = None,
                 inventory: Inventory | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.ca_files = CaFiles(settings.ca_dir)
        self._inventory = inventory
        self._authority: Authority | None = None

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> "Service":
        """Open an existing CA home.

        Raises:
            NotFound: there is no CA in settings.home.
        """
        service = cls(settings, clock)
        service.ca_files.require()
        return service

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = Inventory.open(self.settings.database_url)
        return self._inventory

    def ca_certificates(self) -> dict[str, x509.Certificate]:
        """The CA certificates by name ("root", "intermediate"); public, no passphrase."""
        return self.ca_files.certificates()

    def authority(self, passphrase_source: PassphraseSource) -> Authority:
        """The CA with its keys; decrypted once per process."""
        if self._authority is None:
            self._authority = self.ca_files.load(passphrase_source)
        return self._authority

    def replace_authority(self, authority: Authority) -> None:
        """After `rotate intermediate`: the authority this process signs with from now on."""
        self._authority = authority
