"""--require-on semantics as regexes: what a prefix covers, what is refused as ambiguous."""

from __future__ import annotations

import re

import pytest

from mtlskit.deploy import paths


@pytest.mark.parametrize("path", ["/admin", "/ADMIN", "/admin/", "/Admin/users", "/admin;x", "/admin;x/y",
                                  "//admin", "/admin//x", "/;x/admin", "/;/;a//admin;b"])
def test_prefix_covers(path):
    assert re.search(paths.prefix_regex("/admin"), path, re.I)


@pytest.mark.parametrize("path", ["/", "/administrator", "/adminx", "/x/admin", "/x;admin", "/admin.x"])
def test_prefix_does_not_cover(path):
    assert not re.search(paths.prefix_regex("/admin"), path, re.I)


def test_multi_segment_prefix_and_dots_are_literal():
    regex = paths.prefix_regex("/ops/v1.2")
    assert re.search(regex, "/OPS;a//v1.2;b/x", re.I)
    assert re.search(regex, "/ops/;x/v1.2", re.I)
    assert not re.search(regex, "/ops/v1x2", re.I)
    assert paths.prefix_regex("/") == "^/"


@pytest.mark.parametrize("target", ["/admin%2F", "/x%5cadmin", "/x\\admin", "/./admin", "/x/../admin",
                                    "/x/%2E%2e/admin", "/x/..;/admin", "/x/.;a/admin", "/x/..", "/x/..?q", "/admin%00",
                                    "/x/%252E%252e/admin",
                                    "http://h/x/../admin"])
def test_ambiguous_targets(target):
    assert re.search(paths.ambiguous_target_regex(), target, re.I)
    assert re.search(paths.ambiguous_request_line_regex(), f"GET {target} HTTP/1.1", re.I)
    assert re.search(paths.ambiguous_path_regex(), target.split("?")[0], re.I)


@pytest.mark.parametrize("target", ["/admin", "/a.b/c", "/..x/y", "/x.../y", "/a?next=/../admin",
                                    "/a?p=%2f", "/hello%20world", "//admin"])
def test_plain_targets_are_not_ambiguous(target):
    assert not re.search(paths.ambiguous_target_regex(), target, re.I)
    assert not re.search(paths.ambiguous_request_line_regex(), f"GET {target} HTTP/1.1", re.I)
    assert not re.search(paths.ambiguous_path_regex(), target.split("?")[0], re.I)


def test_every_prefix_character_is_literal():
    regex = paths.prefix_regex("/v1_x-y~z.w")
    assert re.search(regex, "/V1_X-Y~Z.W/a", re.I)
    assert not any(re.search(regex, p, re.I) for p in ("/v1_x-y~zaw", "/v1_xay~z.w"))
