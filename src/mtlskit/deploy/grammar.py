"""The strict grammar of every value `mtlskit deploy` writes into a configuration (pure).

Each check takes the text as given (no strip), matches it whole (``\\A...\\Z``; ``$``
would also match before a trailing newline) and raises ``UsageError`` naming the
option. What passes here contains no character that any of the three servers gives
a meaning to (statement or block ends, comments, quotes, escapes, ``$`` and ``%{``
expansions, spaces, line breaks); the templates quote it as well (``deploy/quoting.py``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath

from mtlskit.errors import UsageError
from mtlskit.pki.names import PATH_SHOWN, shown

# Host names: DNS labels; "_" allowed too (service names of Docker and Compose).
_DNS_NAME = re.compile(r"\A(?=.{1,253}\Z)(?:(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
_IP_CHARS = re.compile(r"\A[0-9A-Fa-f:.]{2,45}\Z")           # no zone index (%eth0)
_PORT = re.compile(r"\A[0-9]{1,5}\Z")
# Absolute paths: letters, digits and . _ ~ @ + = - between slashes. No space, quote,
# backslash, $, %, #, ;, braces or control character: none can be mistaken for syntax.
# No "," either: HAProxy reads it as a list of addresses (stats socket, bind).
_ABSOLUTE_PATH = re.compile(r"\A/[A-Za-z0-9._~@+=/-]{0,1022}\Z")
PATH_CHARACTERS = "letters, digits and . _ ~ @ + = - /"
# URL paths (--require-on, and the path of a responder URL).
_URL_PATH = re.compile(r"\A/[A-Za-z0-9._~/-]{0,255}\Z")
# The value a route matches in a certificate's CN/OU/SAN: single inner spaces allowed.
_ROUTE_VALUE = re.compile(r"\A[A-Za-z0-9._@*+-](?:[A-Za-z0-9._@*+ -]{0,126}[A-Za-z0-9._@*+-])?\Z")
_URL = re.compile(r"\A(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
                  r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~/-]*)?\Z")
# --reload: an argv line run without a shell; words of plain characters, one space apart.
_RELOAD = re.compile(r"\A(?=.{1,1024}\Z)[A-Za-z0-9_./:=@%+,~-]+(?: [A-Za-z0-9_./:=@%+,~-]+){0,31}\Z")
_USER = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")


def check_host(host: str, option: str) -> str:
    """A DNS name or an IP address (IPv6 without brackets)."""
    if _is_ip(host) or _DNS_NAME.match(host):
        return host
    raise UsageError(f"{option} {shown(host)}: not an IP address or a DNS name")


def check_port(text: str, option: str) -> int:
    if _PORT.match(text) and 0 < int(text) < 65536:
        return int(text)
    raise UsageError(f"{option} {shown(text)}: port must be a number from 1 to 65535")


def check_absolute_path(path: str, option: str) -> str:
    """An absolute path of plain characters, without ``.``/``..`` segments or ``//``."""
    parts = path.split("/")[1:]
    if not _ABSOLUTE_PATH.match(path) or any(p in (".", "..") for p in parts) or "//" in path:
        raise UsageError(f"{option} {shown(path, PATH_SHOWN)} must be an absolute path of {PATH_CHARACTERS}",
                         hint="no spaces, quotes, $, %, #, ; or line breaks; no . or .. segments")
    return str(PurePosixPath(path))


def check_url_path(path: str, option: str) -> str:
    """An absolute URL path of plain characters, without dot segments or ``//``."""
    parts = path.split("/")[1:]
    if not _URL_PATH.match(path) or any(p in (".", "..") for p in parts) or "//" in path:
        raise UsageError(f"{option} {shown(path)} must be an absolute URL path such as /admin")
    return path


def check_url(url: str, option: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """``scheme://HOST[:PORT][/path]`` with a plain host and path (no query, user or fragment)."""
    match = _URL.match(url)
    if not match or match["scheme"] not in schemes:
        raise UsageError(f"{option} {shown(url)} is not {'|'.join(schemes)}://HOST[:PORT][/PATH]")
    check_host(match["host"].strip("[]"), option)
    if match["port"] is not None:
        check_port(match["port"], option)
    if match["path"] not in (None, "/"):
        check_url_path(match["path"], option)
    return url


def check_route_value(value: str) -> str:
    if not _ROUTE_VALUE.match(value):
        raise UsageError(f"--route value {shown(value)} must be 1-128 letters, digits, . _ @ * + - "
                         f"or inner spaces")
    return value


def check_reload(command: str) -> str:
    """``socket:/abs/path`` or a command line run without a shell (so no shell syntax)."""
    if command.startswith("socket:"):
        check_absolute_path(command[len("socket:"):], "--reload socket:")
        return command
    if not _RELOAD.match(command):
        raise UsageError(f"--reload {shown(command)} must be a command line of plain words "
                         f"(letters, digits, _ . / : = @ % + , ~ -) one space apart",
                         hint="it runs without a shell; put anything more in a script and give its path")
    return command


def check_user(name: str, what: str) -> str:
    if not _USER.match(name):
        raise UsageError(f"{what} {shown(name)} is not a user or group name")
    return name


def _is_ip(host: str) -> bool:
    if not _IP_CHARS.match(host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
