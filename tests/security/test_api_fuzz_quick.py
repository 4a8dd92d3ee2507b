"""The REST API's fuzz target (fuzz/api_requests.py) runs briefly in the suite; `make fuzz`
runs it for minutes."""

from __future__ import annotations

import pytest
from hypothesis import given

from fuzz import api_requests, engine

pytestmark = pytest.mark.security


def test_api_requests_fuzz_target_holds_briefly():
    engine.quick_settings(300)(given(api_requests.CASES)(api_requests.check))()
