"""Fuzz target: the configuration renderers, with options built from arbitrary text by
the CLI's own parsers (``deploy.options`` parse_*/check_*, ``names.check_name``).

Each text field is a benign value with hostile fragments put in (newlines, ``;``, braces,
quotes, comment signs, NUL, Unicode line separators...) or arbitrary text. Either a parser,
``validate`` or ``render`` refuses it with a UsageError/BadInput, or the rendered files
have exactly the lines, ``;``, ``{`` and ``}`` of the same deployment rendered with benign
values in those fields: a value never adds a directive, a block or a line the template
did not write.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from hypothesis import strategies as st

from fuzz import engine
from mtlskit.deploy import options as opts
from mtlskit.deploy.render import render
from mtlskit.errors import BadInput, UsageError
from mtlskit.pki.names import check_name

BENIGN = {"name": "web.example", "directory": "/srv/mtls", "listen": "0.0.0.0:8443",
          "upstream": "http://127.0.0.1:8000", "route": "cn=admin:127.0.0.1:8001", "require_on": "/admin",
          "reload": "true", "ocsp_url": "http://ca.example/ocsp", "run_user": "www-data"}
FRAGMENTS = ["\n", "\r", ";", "{", "}", '"', "'", "#", " ", "\t", "\\", "$", "`", "%", "\x00", "\u2028", "\x85",
             "[", "]", ":", "/", "..", "*", "@", "\n}\nserver {\n", "; include /etc/passwd;", "${x}", "\ufeff",
             "Ａ", "é"]


@st.composite
def _hostile(draw, benign: str) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=30))
    text = benign
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 2))
        text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at + cut:]
    return text


@st.composite
def _case(draw) -> dict:
    hostile = draw(st.sets(st.sampled_from(sorted(BENIGN)), min_size=1, max_size=2))  # the rest stays readable
    fields = {key: (draw(_hostile(value)) if key in hostile else value) for key, value in BENIGN.items()}
    fields["server"] = draw(st.sampled_from(opts.SERVERS))
    fields["standalone"] = draw(st.booleans())
    fields["with_route"] = draw(st.booleans())
    fields["optional"] = draw(st.booleans())
    return fields


CASES = _case()


def build(fields: dict) -> opts.DeployOptions:
    """The options as ``mtlskit deploy`` builds them from its command line."""
    pool = opts.parse_upstreams([fields["upstream"]])
    apache_standalone = fields["server"] == "apache" and fields["standalone"]
    return opts.validate(opts.DeployOptions(
        server=fields["server"], name=check_name(fields["name"], "--name"),
        directory=opts.check_directory(fields["directory"]), listen=opts.parse_listen(fields["listen"]),
        upstream=pool[0], upstreams=pool,
        mode="optional" if fields["optional"] else "required",
        require_on=(opts.check_path(fields["require_on"]),) if fields["optional"] else (),
        routes=(opts.parse_route(fields["route"]),) if fields["with_route"] else (),
        standalone=fields["standalone"], reload_command=fields["reload"], ocsp_url=fields["ocsp_url"],
        run_user=fields["run_user"] if apache_standalone else None,
        run_group=fields["run_user"] if apache_standalone else None))


def _like(host: str) -> str:
    return host if host == "*" else ("::1" if ":" in host else "127.0.0.1")


def benign_twin(options: opts.DeployOptions) -> opts.DeployOptions:
    """The same deployment (same server, schemes, address families, flags) with benign text."""
    def upstream(u: opts.Upstream) -> opts.Upstream:
        return opts.Upstream(u.scheme, opts.Endpoint(_like(u.endpoint.host), u.endpoint.port))

    pool = tuple(upstream(u) for u in options.pool)
    return dataclasses.replace(
        options, name=BENIGN["name"], directory=Path(BENIGN["directory"]),
        listen=opts.Endpoint(_like(options.listen.host), options.listen.port), upstream=pool[0], upstreams=pool,
        require_on=tuple(re.sub(r"[^/]", "a", path) for path in options.require_on),  # same segments
        routes=tuple(opts.Route(r.kind, "admin", upstream(r.upstream)) for r in options.routes),
        reload_command=BENIGN["reload"], ocsp_url=BENIGN["ocsp_url"],
        run_user=options.run_user and BENIGN["run_user"], run_group=options.run_group and BENIGN["run_user"])


def shape(text: str) -> tuple[int, int, int, int, bool]:
    return (text.count("\n"), text.count(";"), text.count("{"), text.count("}"),
            any(c in text for c in "\r\x00\x85\u2028\u2029\x0b\x0c"))


def check(fields: dict) -> None:
    try:
        options = build(fields)
        files = render(options, 1)
    except (UsageError, BadInput):
        return
    twin = render(benign_twin(options), 1)
    assert files.keys() == twin.keys(), (sorted(files), sorted(twin))
    for name, text in files.items():
        if shape(text) != shape(twin[name]):
            lines = [(a, b) for a, b in zip(text.splitlines(), twin[name].splitlines()) if a != b]
            raise AssertionError(f"{name}: {shape(text)} != {shape(twin[name])}; first differences: {lines[:3]}")


if __name__ == "__main__":
    engine.main("deploy_render", CASES, check)
