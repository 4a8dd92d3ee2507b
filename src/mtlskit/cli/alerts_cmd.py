"""`mtlskit alerts`: Prometheus alert rules for the metrics of `mtlskit serve`."""

from __future__ import annotations

import sys

import typer


def alerts(
    job: str = typer.Option("mtlskit", "--job", help="The Prometheus scrape job of `mtlskit serve` (its /metrics)."),
    days: int = typer.Option(14, "--days", help="Warn this many days before a certificate without a successor "
                                                "expires (deployments: half of it, critical)."),
) -> None:
    """Print alert rules (YAML for Prometheus's rule_files): certificates expiring without renewal,
    stale CRLs, a failing or unreachable OCSP responder, its certificate expiring, OCSP errors."""
    from mtlskit.metrics.alerts import rules_yaml

    sys.stdout.write(rules_yaml(job, days))


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts)
