"""The CA registry: CA names by generation, the newest intermediate issues."""

from __future__ import annotations

import pytest

from mtlskit.ca.home import CaRegistry, generation_of, intermediate_name, is_ca_name


@pytest.mark.parametrize("name, generation", [
    ("intermediate", 1), ("intermediate-2", 2), ("intermediate-10", 10), ("intermediate-9999", 9999),
    ("intermediate-1", None), ("intermediate-02", None), ("intermediate-", None), ("root", None),
    ("intermediate-2\n", None), ("Intermediate", None), ("intermediate-2.key", None), ("../intermediate", None),
])
def test_generation_of(name, generation):
    assert generation_of(name) == generation
    assert is_ca_name(name) == (generation is not None or name == "root")


def test_names_round_trip():
    for generation in (1, 2, 3, 11):
        assert generation_of(intermediate_name(generation)) == generation


def test_the_newest_intermediate_issues_and_the_others_are_retired():
    registry = CaRegistry(("root", "intermediate", "intermediate-2", "intermediate-10"))
    assert registry.issuing == "intermediate-10"
    assert registry.retired == ("intermediate", "intermediate-2")
    assert registry.next_intermediate() == "intermediate-11"


def test_a_single_ca_home():
    registry = CaRegistry(("root",))
    assert registry.issuing == "root" and registry.retired == () and registry.intermediates == ()
    assert registry.next_intermediate() == "intermediate"
