"""``--require-on PREFIX``: which request paths a prefix covers, as regexes (pure).

Semantics, the same on the three servers (the README states them):
- a path is covered when, after the server's own URI normalisation (percent-decoding,
  dot segments resolved), it equals PREFIX or continues it with ``/``, compared
  case-insensitively, with ``;parameters`` of every segment ignored and repeated
  slashes, or segments made of parameters only, counted as one slash (``/ADMIN``,
  ``/admin;x``, ``//admin/``, ``/;x/admin``, ``/%61dmin`` are covered); a decoded ``?``
  or ``#`` (sent as ``%3F``, ``%23``) ends the path, as it would for an upstream that
  decodes before it splits;
- a request whose raw path is ambiguous -- an encoded slash, backslash or NUL (``%2F``,
  ``%5C``, ``%00``, or double-encoded: ``%252F``, ``%252E``...), a backslash, or a dot
  segment (``.``/``..``, percent-encoded or carrying
  ``;parameters``) -- is refused outright: upstreams disagree on what it means.
"""

from __future__ import annotations

import re

_PARAMS = r"(;[^/]*)?"
_GAP = r"(/(;[^/]*)?)*/"          # slashes, and segments made of parameters only (/;x/)
_UNSAFE = r"%2f|%5c|%00|%25(2e|2f|5c|00)|\\"   # %25..: a double-encoded dot, slash, NUL
_DOT_SEGMENT = r"/(\.|%2e){1,2}"


def prefix_regex(prefix: str) -> str:
    """A PCRE (to be matched case-insensitively) for the normalised paths ``prefix`` covers."""
    segments = [re.sub(r"([^A-Za-z0-9])", r"\\\1", s) for s in prefix.split("/") if s]   # all literal
    if not segments:
        return "^/"
    return "^" + "".join(f"{_GAP}{s}{_PARAMS}" for s in segments) + "([/?#]|$)"   # ?# once %3F %23


def ambiguous_target_regex() -> str:
    """A PCRE (case-insensitive) for a raw request target whose path is ambiguous (query included)."""
    return rf"^[^?]*({_UNSAFE}|{_DOT_SEGMENT}(;[^/?]*)?(/|\?|$))"


def ambiguous_path_regex() -> str:
    """The same for a raw path without its query (HAProxy's ``path``)."""
    return rf"({_UNSAFE}|{_DOT_SEGMENT}{_PARAMS}(/|$))"


def ambiguous_request_line_regex() -> str:
    """The same for a whole request line, ``METHOD TARGET VERSION`` (Apache's THE_REQUEST)."""
    return rf"^\S+\s+[^?\s]*({_UNSAFE}|{_DOT_SEGMENT}(;[^/?\s]*)?(/|\?|\s|$))"
