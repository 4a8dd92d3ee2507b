"""The manifest of a backup archive, and the names an archive may hold.

An archive is a POSIX tar file whose first member is ``manifest.json``:

    {"format": "mtlskit-backup", "format_version": 1, "mtlskit_version": "0.1.0",
     "schema_revision": "0005_service", "created_at": "2026-12-06T02:30:00Z",
     "database": {"dialect": "sqlite", "member": "inventory.db"},
     "inventory": {"certificates": 3, "revoked": 1, "audit_events": 9},
     "keys": {"root": "in-archive", "intermediate": "in-archive"},   (or in-token, not-in-archive)
     "members": [{"name": "ca/root.pem", "size": 619, "sha256": "..."}, ...]}

Every other member is listed in ``members`` with its size and SHA-256. A member name
must match one of MEMBER_NAMES exactly: no directories, no ``..``, no absolute paths;
restore writes each to a path it builds itself, with the mode of its kind (mode_of).
"""

from __future__ import annotations

import dataclasses
import json
import re

from mtlskit.errors import BadInput

FORMAT = "mtlskit-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "inventory.db"
POSTGRESQL_MEMBER = "inventory.pgdump"
CONFIG_MEMBER = "mtlskit.toml"
_CA = r"(?:root|intermediate(?:-(?:[2-9]|[1-9][0-9]{1,3}))?)"
MEMBER_NAMES = re.compile(rf"(?:ca/{_CA}(?:\.key\.pem|\.pem|\.pkcs11\.json)|{re.escape(SQLITE_MEMBER)}|"
                          rf"{re.escape(POSTGRESQL_MEMBER)}|{re.escape(CONFIG_MEMBER)})\Z")
MAX_MEMBERS = 256            # a home holds a few CA files, a config and a database
MAX_MANIFEST = 1024 * 1024
MAX_SMALL_MEMBER = 1024 * 1024   # a CA certificate, key or config file
# a key file in the archive; a key in a PKCS#11 token (the archive holds the home's
# reference to it, ca/<name>.pkcs11.json, not the key); a key kept off the machine
INVENTORY_COUNTS = ("certificates", "revoked", "audit_events")
KEY_STATES = ("in-archive", "in-token", "not-in-archive")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")

PRIVATE_FILE, PUBLIC_FILE, PRIVATE_DIR = 0o600, 0o644, 0o700


def mode_of(name: str) -> int:
    """The mode a restored member gets: CA certificates are public, the rest is private
    (keys, the config that may hold a database URL, the inventory)."""
    if name.startswith("ca/") and name.endswith(".pem") and not name.endswith(".key.pem"):
        return PUBLIC_FILE
    return PRIVATE_FILE


def size_limit(name: str) -> int | None:
    """The largest a member may be (None: the database, bounded by the archive)."""
    return None if name in (SQLITE_MEMBER, POSTGRESQL_MEMBER) else MAX_SMALL_MEMBER


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    mtlskit_version: str
    schema_revision: str
    created_at: str
    dialect: str
    inventory: dict
    keys: dict
    members: tuple[Member, ...]
    format_version: int = FORMAT_VERSION

    @property
    def database_member(self) -> str:
        return SQLITE_MEMBER if self.dialect == "sqlite" else POSTGRESQL_MEMBER

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT, "format_version": self.format_version,
            "mtlskit_version": self.mtlskit_version, "schema_revision": self.schema_revision,
            "created_at": self.created_at,
            "database": {"dialect": self.dialect, "member": self.database_member},
            "inventory": self.inventory, "keys": self.keys,
            "members": [dataclasses.asdict(m) for m in self.members]}
        return (json.dumps(document, indent=1, sort_keys=False) + "\n").encode()


def parse_manifest(data: bytes) -> Manifest:
    """The manifest in ``data``, checked field by field.

    Raises:
        BadInput: not a manifest of a format this version reads.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadInput("the archive's manifest is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BadInput("not an mtlskit backup (its manifest has no \"format\": \"mtlskit-backup\")")
    version = document.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:   # JSON true is not version 1
        raise BadInput(f"backup format version {str(version)[:20]} is not the one this version reads "
                       f"({FORMAT_VERSION})", hint="restore it with the version that wrote it")
    database = _field(document, "database", dict)
    dialect = _field(database, "dialect", str)
    if dialect not in ("sqlite", "postgresql"):
        raise BadInput("the manifest names an unknown database dialect")
    members = tuple(_member(item) for item in _field(document, "members", list))
    _check_members(members, dialect)
    keys = _field(document, "keys", dict)
    if not all(isinstance(v, str) and v in KEY_STATES for v in keys.values()):
        raise BadInput("the manifest's \"keys\" are not understood")
    inventory = _field(document, "inventory", dict)
    if set(inventory) != set(INVENTORY_COUNTS) or any(type(v) is not int or v < 0 for v in inventory.values()):
        raise BadInput("the manifest's \"inventory\" counts are not understood")
    return Manifest(
        mtlskit_version=_field(document, "mtlskit_version", str),
        schema_revision=_field(document, "schema_revision", str),
        created_at=_field(document, "created_at", str), dialect=dialect,
        inventory=inventory, keys=keys, members=members)


def _field(document: dict, key: str, kind: type):
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadInput(f"the archive's manifest has no valid {key!r}")
    return value


def _member(item) -> Member:
    if not isinstance(item, dict):
        raise BadInput("the manifest lists a member that is not an object")
    name, size, digest = item.get("name"), item.get("size"), item.get("sha256")
    if not isinstance(name, str) or not MEMBER_NAMES.match(name):
        raise BadInput(f"the manifest lists a member name that is not allowed: {str(name)[:80]!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadInput(f"the manifest gives no valid size for {name}")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise BadInput(f"the manifest gives no valid SHA-256 for {name}")
    return Member(name, size, digest)


def _check_members(members: tuple[Member, ...], dialect: str) -> None:
    names = [m.name for m in members]
    if len(names) > MAX_MEMBERS:
        raise BadInput(f"the manifest lists {len(names)} members (at most {MAX_MEMBERS})")
    if len(set(names)) != len(names):
        raise BadInput("the manifest lists a member twice")
    database = SQLITE_MEMBER if dialect == "sqlite" else POSTGRESQL_MEMBER
    for required in (database, "ca/root.pem"):
        if required not in names:
            raise BadInput(f"the manifest lists no {required}")
    other = POSTGRESQL_MEMBER if dialect == "sqlite" else SQLITE_MEMBER
    if other in names:
        raise BadInput(f"the manifest lists {other} in a {dialect} backup")
