"""Fuzz targets (issue 11, "Fuzzed"): each module is runnable on its own for a time budget,
``python -m fuzz.<module> --seconds N``; ``make fuzz`` runs them all; a quick version of each
runs in the test suite (tests/security/test_fuzz_quick.py).

Each target module defines ``CASES`` (a hypothesis strategy of inputs: mutations of real
inputs and structured garbage) and ``check(case)``, which raises AssertionError (or any
exception) on a finding: a crash, a traceback where a domain error is due, or an answer
that disagrees with the oracle.
"""
