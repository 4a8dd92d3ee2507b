"""Prometheus metrics of `mtlskit serve` (``/metrics``) and the alert rules of `mtlskit alerts`.

- :mod:`.slots`: each serving process counts in its own shared-memory file (one float per
  series); a scrape, answered by any worker, sums every file of the directory `serve`
  created before forking, so it counts the requests of all workers, dead ones included.
- :mod:`.recorder`: what the HTTP layer counts (OCSP answers by status and their latency,
  requests by route template, method and code), with every label bounded.
- :mod:`.inventory`: certificate, deployment and CRL aggregates, computed in SQL
  (:mod:`mtlskit.store.metrics`) and kept for a few seconds per process.
- :mod:`.exposition`: the Prometheus text format, written by prometheus-client.
- :mod:`.alerts`: the alert rules.
"""
