"""``policy.toml``: rules mapping a client certificate's identity to paths and methods (pure).

    [[rule]]
    name = "admins"
    match = { cn = ["alice"], san_uri = ["spiffe://corp/admin/*"] }
    paths = ["/admin/"]
    methods = ["GET", "POST"]          # optional; any method when absent

Semantics (the README states them):
- deny by default: a request is allowed only by a rule that matches its identity, its
  path and its method; the first such rule (in file order) names the decision;
- a rule matches an identity when ANY of its ``match`` values matches (keys: ``cn``,
  ``ou``, ``san_dns``, ``san_uri`` -- SPIFFE IDs are URI SANs --, ``san_email``,
  ``issuer``: the issuing CA's name in mtlskit, or its DN as ``X-Client-Issuer-DN`` prints it);
- ``cn``, ``ou``, ``san_uri`` and ``issuer`` compare exactly; ``san_dns`` and
  ``san_email`` ignore case. Globs are narrow on purpose: ``*.example.com`` (one DNS
  label), ``*@example.com`` (any mailbox of one domain), ``spiffe://corp/admin/*`` (a
  URI prefix ending in ``/`` after its authority). A bare ``*`` or any other ``*`` is refused;
- a path prefix ending in ``/`` covers the paths that start with it (``/admin/`` covers
  ``/admin/x`` but not ``/admin``); without a trailing ``/`` it covers itself and what
  continues it with ``/`` (``/admin`` covers ``/admin`` and ``/admin/x``, not
  ``/administrator``). Paths are compared, case-sensitively, with the path Nginx routes
  (``$uri``: percent-decoded, dot segments resolved, slashes merged);
- methods are upper-cased when read; ``HEAD`` is allowed only where listed.

Every refusal is one ``BadInput`` sentence naming the rule and key: unknown keys, wrong
types, an empty rule, a value with a control character or a quote, a glob that matches
too much.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from mtlskit.errors import BadInput
from mtlskit.pki.names import shown

MATCH_KEYS = ("cn", "ou", "san_dns", "san_uri", "san_email", "issuer")
RULE_KEYS = ("name", "match", "paths", "methods")
MAX_RULES = 1000
MAX_VALUES = 1000
MAX_VALUE_LENGTH = 1024
MAX_POLICY_BYTES = 1024 * 1024

_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_METHOD = re.compile(r"\A[A-Z]{1,20}\Z")
# A decoded URL path of plain characters: no %, ?, #, quote, backslash or space.
_PATH = re.compile(r"\A/[A-Za-z0-9._~!&()*+,;=:@/-]*\Z")
# Refused in every value: control characters, quotes, backslash (they would reach a log
# line or a header, and nothing legitimate needs them).
_HOSTILE = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029\"'\\]")
_DNS_GLOB = re.compile(r"\A\*\.[a-z0-9-]+(\.[a-z0-9-]+)+\Z")
_EMAIL_GLOB = re.compile(r"\A\*@[a-z0-9-]+(\.[a-z0-9-]+)+\Z")
_URI_GLOB = re.compile(r"\A[a-z][a-z0-9+.-]*://[^/*]+/([^*]*/)?\*\Z")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One ``[[rule]]``: who (``match``: key -> values), where (``paths``), how (``methods``; empty = any)."""

    name: str
    match: dict[str, tuple[str, ...]]
    paths: tuple[str, ...]
    methods: frozenset[str] = frozenset()

    def covers(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        return any(path_covered(prefix, path) for prefix in self.paths)


@dataclasses.dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]


def path_covered(prefix: str, path: str) -> bool:
    """Whether ``prefix`` covers the routed ``path`` (segment boundaries respected)."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy file.

    Raises:
        BadInput: unreadable, not TOML, or not a valid policy (one sentence why).
    """
    from mtlskit.fileio import InputRefused, read_input

    try:
        data = read_input(path, limit=MAX_POLICY_BYTES)
    except (OSError, InputRefused) as exc:
        raise BadInput(f"policy {shown(str(path))}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    return parse_policy(data, str(path))


def parse_policy(data: bytes, source: str = "policy") -> Policy:
    """Validate the bytes of a policy file (see the module docstring).

    Raises:
        BadInput: naming ``source``, the rule and the key at fault.
    """
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"{source}: not a TOML file ({_one_line(exc)})") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise BadInput(f"{source}: unknown top-level key {shown(unknown[0])} (only [[rule]] tables)")
    rules = document.get("rule")
    if not isinstance(rules, list) or not rules:
        raise BadInput(f"{source}: no [[rule]]: a policy that allows nothing denies every request")
    if len(rules) > MAX_RULES:
        raise BadInput(f"{source}: more than {MAX_RULES} rules")
    parsed = [_rule(source, index, table) for index, table in enumerate(rules, 1)]
    seen: set[str] = set()
    for rule in parsed:
        if rule.name in seen:
            raise BadInput(f"{source}: rule name {rule.name!r} is used twice")
        seen.add(rule.name)
    return Policy(tuple(parsed))


def _rule(source: str, index: int, table: object) -> Rule:
    where = f"{source}: rule {index}"
    if not isinstance(table, dict):
        raise BadInput(f"{where}: is not a table")
    if not table:
        raise BadInput(f"{where}: is empty (it needs name, match and paths)")
    unknown = sorted(set(table) - set(RULE_KEYS))
    if unknown:
        raise BadInput(f"{where}: unknown key {shown(unknown[0])} (keys: {', '.join(RULE_KEYS)})")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"{where}: name must be 1-64 letters, digits, . _ - (starting with a letter or digit)")
    where = f"{source}: rule {name!r}"
    return Rule(name, _match(where, table.get("match")), _paths(where, table.get("paths")),
                _methods(where, table.get("methods")))


def _strings(where: str, key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadInput(f"{where}: {key} must be a non-empty list of strings")
    if len(value) > MAX_VALUES:
        raise BadInput(f"{where}: {key} has more than {MAX_VALUES} values")
    for item in value:
        if not isinstance(item, str) or not item:
            raise BadInput(f"{where}: {key} must be a non-empty list of non-empty strings")
        if len(item) > MAX_VALUE_LENGTH or _HOSTILE.search(item):
            raise BadInput(f"{where}: {key} value {shown(item)} has a control character, quote or "
                           f"backslash, or is longer than {MAX_VALUE_LENGTH} characters")
    return value


def _match(where: str, value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not value:
        raise BadInput(f"{where}: match must be a non-empty table such as {{ cn = [\"alice\"] }}")
    unknown = sorted(set(value) - set(MATCH_KEYS))
    if unknown:
        raise BadInput(f"{where}: unknown match key {shown(unknown[0])} (keys: {', '.join(MATCH_KEYS)})")
    match = {}
    for key, items in value.items():
        texts = _strings(where, f"match.{key}", items)
        match[key] = tuple(_matcher_value(where, key, text) for text in texts)
    return match


def _matcher_value(where: str, key: str, text: str) -> str:
    """The value as compared (lower case where the key ignores case), its glob checked."""
    if key in ("san_dns", "san_email"):
        text = text.lower()
    if "*" not in text:
        return text
    narrow = {"san_dns": _DNS_GLOB, "san_email": _EMAIL_GLOB, "san_uri": _URI_GLOB}.get(key)
    if narrow is None or not narrow.match(text):
        raise BadInput(f"{where}: match.{key} glob {shown(text)} matches too much (allowed: *.example.com "
                       f"for san_dns, *@example.com for san_email, scheme://authority/path/* for san_uri)")
    return text


def _paths(where: str, value: object) -> tuple[str, ...]:
    paths = _strings(where, "paths", value)
    for path in paths:
        segments = path.split("/")[1:]
        if not _PATH.match(path) or "*" in path or "//" in path or any(s in (".", "..") for s in segments):
            raise BadInput(f"{where}: path {shown(path)} must be an absolute URL path prefix such as /admin/ "
                           f"(decoded, no *, %, ?, #, // or dot segments)")
    return tuple(paths)


def _methods(where: str, value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    methods = [m.upper() for m in _strings(where, "methods", value)]
    for method in methods:
        if not _METHOD.match(method):
            raise BadInput(f"{where}: method {shown(method)} is not an HTTP method such as GET")
    return frozenset(methods)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
