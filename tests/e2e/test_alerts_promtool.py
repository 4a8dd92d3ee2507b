"""`mtlskit alerts` judged by promtool: `check rules` accepts its output, and `test rules`
shows the expiry, CRL and OCSP alerts firing on series shaped like /metrics (and not on
healthy ones), once per profile across two replicas."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support_ocsp import mtlskit_cli

pytestmark = pytest.mark.e2e


def _rules(tmp_path: Path, *args: str) -> Path:
    result = mtlskit_cli(tmp_path / "home", "alerts", *args)
    assert result.returncode == 0, result.stderr.decode()
    path = tmp_path / "rules.yml"
    path.write_bytes(result.stdout)
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, timeout=60)


@pytest.mark.parametrize("args", [(), ("--job", "pki-ocsp.prod:1", "--days", "30")])
def test_promtool_check_rules_accepts_the_output(tmp_path, args):
    rules = _rules(tmp_path, *args)
    judged = _promtool("check", "rules", str(rules))
    assert judged.returncode == 0, judged.stdout.decode() + judged.stderr.decode()
    assert "SUCCESS: 9 rules found" in judged.stdout.decode()


def test_promtool_test_rules_shows_the_alerts_firing(tmp_path):
    rules = _rules(tmp_path)
    # two replicas (instances a and b) export the same inventory; time() starts at 0, so
    # a value of 864000 is "10 days from now" and 2592000 "30 days from now"
    (tmp_path / "tests.yml").write_text(textwrap.dedent(f"""\
        rule_files: [{rules.name}]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              - series: 'mtlskit_certificate_expiry_timestamp_seconds{{job="mtlskit",instance="a",profile="server"}}'
                values: '864000x120'
              - series: 'mtlskit_certificate_expiry_timestamp_seconds{{job="mtlskit",instance="b",profile="server"}}'
                values: '864000x120'
              - series: 'mtlskit_certificate_expiry_timestamp_seconds{{job="mtlskit",instance="a",profile="client"}}'
                values: '2592000x120'
              - series: 'mtlskit_certificate_expiry_timestamp_seconds{{job="mtlskit",instance="a",profile="ocsp"}}'
                values: '86400x120'
              - series: 'mtlskit_crl_next_update_timestamp_seconds{{job="mtlskit",instance="a",ca="intermediate"}}'
                values: '3000x120'
              - series: 'mtlskit_crl_next_update_timestamp_seconds{{job="mtlskit",instance="a",ca="root"}}'
                values: '31536000x120'
              - series: 'mtlskit_ocsp_responses_total{{job="mtlskit",instance="a",status="good"}}'
                values: '0+100x120'
              - series: 'mtlskit_ocsp_responses_total{{job="mtlskit",instance="a",status="internal_error"}}'
                values: '0+10x120'
              - series: 'up{{job="mtlskit",instance="a"}}'
                values: '1x120'
            alert_rule_test:
              - eval_time: 59m
                alertname: MtlskitCertificateExpiringWithoutRenewal
                exp_alerts: []
              - eval_time: 61m
                alertname: MtlskitCertificateExpiringWithoutRenewal
                exp_alerts:
                  - exp_labels: {{severity: warning, profile: server}}
                    exp_annotations:
                      summary: 'A server certificate expires in 9d 22h 59m 0s, not renewed'
                      description: 'The soonest valid certificate of profile server has no successor: run `mtlskit list --expiring 14d --profile server`, then `mtlskit renew`, or check `mtlskit agent`.'
              - eval_time: 50m
                alertname: MtlskitCrlStale
                exp_alerts: []
              - eval_time: 56m
                alertname: MtlskitCrlStale
                exp_alerts:
                  - exp_labels: {{severity: critical, ca: intermediate}}
                    exp_annotations:
                      summary: 'The CRL of CA intermediate is past its nextUpdate'
                      description: 'Relying parties reject the CRL of intermediate: run `mtlskit crl` (the root''s needs its key).'
              - eval_time: 20m
                alertname: MtlskitOcspFailing
                exp_alerts:
                  - exp_labels: {{severity: critical, instance: a}}
                    exp_annotations:
                      summary: '9.091% of OCSP answers of a are errors'
                      description: 'internalError or tryLater: the responder cannot read the inventory or sign; see the server''s log.'
              - eval_time: 20m
                alertname: MtlskitResponderDown
                exp_alerts: []
        """))
    judged = _promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert judged.returncode == 0, judged.stdout.decode() + judged.stderr.decode()
    assert "SUCCESS" in judged.stdout.decode()


def test_the_expiry_alert_stays_quiet_when_a_successor_exists(tmp_path):
    """When the soonest certificate is renewed, /metrics moves the profile's soonest expiry
    to the next one not renewed (tests/integration/test_metrics_scrape.py); 90 days away,
    nothing fires."""
    rules = _rules(tmp_path)
    (tmp_path / "quiet.yml").write_text(textwrap.dedent(f"""\
        rule_files: [{rules.name}]
        tests:
          - interval: 1m
            input_series:
              - series: 'mtlskit_certificate_expiry_timestamp_seconds{{job="mtlskit",instance="a",profile="server"}}'
                values: '7776000x180'
            alert_rule_test:
              - eval_time: 170m
                alertname: MtlskitCertificateExpiringWithoutRenewal
                exp_alerts: []
        """))
    judged = _promtool("test", "rules", str(tmp_path / "quiet.yml"))
    assert judged.returncode == 0, judged.stdout.decode() + judged.stderr.decode()


@pytest.mark.parametrize("args, message", [
    (("--job", 'x"} or vector(1) #'), "job name"), (("--job", ""), "job name"),
    (("--days", "0"), "--days must be between 1 and 365"), (("--days", "366"), "--days must be between"),
])
def test_refusals_print_one_error_line_and_exit_2(tmp_path, args, message):
    result = mtlskit_cli(tmp_path / "home", "alerts", *args)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode().splitlines()[0].startswith("error: ") and message in result.stderr.decode()
