"""The metrics of one serving process: its recorder, the cached inventory gauges, the scrape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mtlskit.metrics.inventory import InventoryGauges
from mtlskit.metrics.recorder import Recorder
from mtlskit.metrics.slots import Slots, read_directory

CA_PROFILES = ("root-ca", "intermediate-ca")  # the profile of CA certificates in the inventory (ca/setup.py)


@dataclasses.dataclass(frozen=True)
class MetricsOptions:
    """How `serve` runs its metrics.

    Attributes:
        directory: the private directory `serve` creates before forking its workers (each
            writes its slot file there; a scrape sums them all); None counts this process only.
        token: the bearer token /metrics requires (setting ``metrics_token_file``); None: none.
    """

    directory: Path | None = None
    token: str | None = None


class WorkerMetrics:
    """Counting and scraping in one serving process."""

    def __init__(self, options: MetricsOptions, db, clock, source) -> None:
        self.options = options
        self.recorder = Recorder(Slots(options.directory))
        self.gauges = InventoryGauges(db, clock, shared_dir=options.directory)
        self.source = source  # the OcspSource: its responders' certificates

    def counts(self) -> dict[str, float]:
        """The counters of every worker (the live and the dead), or of this process alone."""
        if self.options.directory is None:
            return self.recorder.slots.read()
        return read_directory(self.options.directory, fold_dead=True)

    def scrape(self) -> bytes:
        from mtlskit.issue.profiles import PROFILES
        from mtlskit.metrics.exposition import Scrape, render

        responders = {name: ca.responder.certificate.not_valid_after_utc for name, ca in self.source.cas.items()}
        return render(Scrape(self.counts(), self.gauges.current(), responders, (*PROFILES, *CA_PROFILES)))
