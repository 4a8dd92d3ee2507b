"""Runs one target for a time budget with hypothesis, counting executions.

Hypothesis has no time budget of its own: the property is run in rounds of ``ROUND``
generated examples (no example database, no shrinking deadline) until the budget is
spent. A failing example is shrunk by hypothesis, reported, and the run goes on with the
next round, so one finding does not hide the rest of the budget.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROUND = 500


def quick_settings(examples: int) -> settings:
    """What the test suite runs: a few hundred examples, derandomized so CI is reproducible."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def run(name: str, cases: st.SearchStrategy, check: Callable[[object], None], seconds: float) -> int:
    """Run ``check`` on generated cases for ``seconds``; print executions and findings.

    Returns:
        the number of findings (0: no crash, no wrong answer, no traceback).
    """
    executions = 0
    findings: list[str] = []
    started = time.monotonic()
    deadline = started + seconds

    def counted(case) -> None:
        nonlocal executions
        executions += 1
        check(case)

    while time.monotonic() < deadline:
        round_settings = settings(max_examples=ROUND, deadline=None, database=None,
                                  suppress_health_check=list(HealthCheck),
                                  phases=[Phase.generate, Phase.shrink])
        test = settings(round_settings)(given(cases)(counted))
        try:
            test()
        except Exception as exc:  # a finding: keep the shrunk example and go on
            text = "".join(traceback.format_exception(exc))[-2500:]
            if text not in findings:
                findings.append(text)
                print(f"[{name}] FINDING:\n{text}", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    print(f"{name}: {executions} executions in {elapsed:.0f}s, {len(findings)} finding(s)", flush=True)
    return len(findings)


def main(name: str, cases: st.SearchStrategy, check: Callable[[object], None]) -> None:
    parser = argparse.ArgumentParser(description=f"fuzz target {name}")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    sys.exit(1 if run(name, cases, check, args.seconds) else 0)
