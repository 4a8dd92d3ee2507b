"""Prometheus alert rules for what /metrics exports (`mtlskit alerts`).

The rules select ``job="<job>"`` (the scrape job of `mtlskit serve`) and aggregate over its
instances (several replicas export the same inventory): an alert fires once per profile,
deployment or CA, not once per replica.
"""

from __future__ import annotations

import dataclasses
import re

from mtlskit.errors import BadInput

JOB_GRAMMAR = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
DAY = 86400


@dataclasses.dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    wait: str          # the rule's "for"
    severity: str
    summary: str
    description: str


def rules(job: str, days: int) -> list[Rule]:
    """The alert rules for scrape job ``job``; certificates warn ``days`` before they expire.

    Raises:
        BadInput: a job name outside ``[A-Za-z0-9_.:-]{1,64}``, or days outside 1-365.
    """
    if not JOB_GRAMMAR.match(job):
        raise BadInput(f"job name {job[:70]!r} is not a Prometheus job name this command writes",
                       hint="use letters, digits, '_', '.', ':' or '-' (at most 64)")
    if not 1 <= days <= 365:
        raise BadInput(f"--days must be between 1 and 365, got {days}")
    on = f'job="{job}"'
    return [
        Rule("MtlskitCertificateExpiringWithoutRenewal",
             f'min by (profile) (mtlskit_certificate_expiry_timestamp_seconds{{{on},profile!="ocsp"}}) - time() '
             f"< {days} * {DAY}", "1h", "warning",
             "A {{ $labels.profile }} certificate expires in {{ $value | humanizeDuration }}, not renewed",
             "The soonest valid certificate of profile {{ $labels.profile }} has no successor: run "
             "`mtlskit list --expiring " + str(days) + "d --profile {{ $labels.profile }}`, then "
             "`mtlskit renew`, or check `mtlskit agent`."),
        Rule("MtlskitDeploymentCertificateExpiring",
             f"min by (server, name, directory) (mtlskit_deployment_certificate_expiry_timestamp_seconds{{{on}}}) "
             f"- time() < {max(1, days // 2)} * {DAY}", "1h", "critical",
             "The {{ $labels.server }} deployment {{ $labels.name }} serves a certificate expiring in "
             "{{ $value | humanizeDuration }}",
             "Deployment {{ $labels.directory }}: its server certificate has not been renewed; "
             "run `mtlskit renew` or check `mtlskit agent`."),
        Rule("MtlskitCrlStale",
             f"min by (ca) (mtlskit_crl_next_update_timestamp_seconds{{{on}}}) < time()", "5m", "critical",
             "The CRL of CA {{ $labels.ca }} is past its nextUpdate",
             "Relying parties reject the CRL of {{ $labels.ca }}: run `mtlskit crl` (the root's needs its key)."),
        Rule("MtlskitCrlNotResigned",
             f"min by (ca) (mtlskit_crl_next_update_timestamp_seconds{{{on}}}) - time() < {DAY}", "30m", "warning",
             "The CRL of CA {{ $labels.ca }} goes stale in {{ $value | humanizeDuration }}",
             "`mtlskit serve` re-signs a CRL at half its life: this one was not re-signed; "
             "check the server's log, or run `mtlskit crl`."),
        Rule("MtlskitResponderDown", f"up{{{on}}} == 0", "5m", "critical",
             "mtlskit serve on {{ $labels.instance }} does not answer scrapes",
             "OCSP, CRLs and the API of {{ $labels.instance }} are unreachable."),
        Rule("MtlskitResponderAbsent", f"absent(up{{{on}}})", "10m", "critical",
             "No mtlskit serve is scraped (job " + job + ")",
             "Prometheus has no target for job " + job + ": OCSP and CRL serving is not watched."),
        Rule("MtlskitOcspFailing",
             f'sum by (instance) (rate(mtlskit_ocsp_responses_total{{{on},status=~"internal_error|try_later"}}[5m])) '
             f"/ sum by (instance) (rate(mtlskit_ocsp_responses_total{{{on}}}[5m])) > 0.05", "5m", "critical",
             "{{ $value | humanizePercentage }} of OCSP answers of {{ $labels.instance }} are errors",
             "internalError or tryLater: the responder cannot read the inventory or sign; see the server's log."),
        Rule("MtlskitOcspErrors",
             f'sum by (instance) (increase(mtlskit_ocsp_responses_total{{{on},status="internal_error"}}[15m])) > 0',
             "0m", "warning",
             "OCSP internalError answers on {{ $labels.instance }}",
             "An OCSP request failed on a bug or a signing error: see the server's log."),
        Rule("MtlskitResponderCertificateExpiring",
             f"min by (ca) (mtlskit_ocsp_responder_certificate_expiry_timestamp_seconds{{{on}}}) - time() < {DAY}",
             "30m", "critical",
             "The OCSP responder certificate of CA {{ $labels.ca }} expires in {{ $value | humanizeDuration }}",
             "`mtlskit serve` renews it at 2/3 of its life; it did not: check the server's log and "
             "that the CA key is available to serve."),
    ]


def rules_yaml(job: str, days: int) -> str:
    """The rule file (YAML) `promtool check rules` reads."""
    lines = ["# Alert rules for mtlskit (`mtlskit alerts`); load with rule_files in prometheus.yml.",
             "groups:", "  - name: mtlskit", "    rules:"]
    for rule in rules(job, days):
        lines += [f"      - alert: {rule.alert}",
                  f"        expr: {_quoted(rule.expr)}",
                  f"        for: {rule.wait}",
                  "        labels:",
                  f"          severity: {rule.severity}",
                  "        annotations:",
                  f"          summary: {_quoted(rule.summary)}",
                  f"          description: {_quoted(rule.description)}"]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """A YAML single-quoted scalar (only the quote itself is escaped, by doubling it)."""
    return "'" + text.replace("'", "''") + "'"
