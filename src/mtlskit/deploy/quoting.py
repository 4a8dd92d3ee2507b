"""Values quoted in each server's own configuration syntax (pure; Jinja2 filters of render.py).

Every value a template writes (names, paths, URLs, hosts, ports) goes through one of
these, after ``options.validate`` has held it to the strict grammar of ``grammar.py``.
The two layers are independent: a value that slipped past the grammar still cannot end
a statement, open a block, start a comment or be expanded by the server. What a
server's syntax cannot represent inside a quoted string is refused, not dropped.

- nginx: ``"..."`` with ``\\`` escapes for ``"`` and ``\\`` (ngx_conf_read_token); ``$`` has
  no escape in a string where nginx expands variables, so it is refused.
- Apache: ``"..."`` with ``\\`` escapes for ``"`` and ``\\`` (ap_getword_conf); ``${NAME}``
  is expanded by the configuration reader (Define/environment) and ``%{NAME}`` by
  ap_expr and mod_rewrite, before or inside any quoting, so both are refused.
- HAProxy: ``'...'``, where nothing is special (no ``\\`` escape, no ``"${VAR}"``
  environment expansion, which only happens in double quotes); ``'`` itself is refused.
"""

from __future__ import annotations

import re

from mtlskit.errors import UsageError
from mtlskit.pki.names import shown

# No line breaks, NUL or other control characters in any server: each reads line by line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def nginx_quote(value: object) -> str:
    """``value`` as one nginx argument."""
    text = _checked(value, "nginx", ("$",))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def apache_quote(value: object) -> str:
    """``value`` as one Apache httpd argument."""
    text = _checked(value, "Apache", ("${", "%{"))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def haproxy_quote(value: object) -> str:
    """``value`` as one HAProxy argument."""
    text = _checked(value, "HAProxy", ("'",))
    return "'" + text + "'"


def _checked(value: object, server: str, unquotable: tuple[str, ...]) -> str:
    text = str(value)
    if not text or _CONTROL.search(text) or any(s in text for s in unquotable):
        raise UsageError(f"{shown(text)} cannot be written safely into the {server} configuration")
    return text


FILTERS = {"nginx_q": nginx_quote, "apache_q": apache_quote, "haproxy_q": haproxy_quote}
