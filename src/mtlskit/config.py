"""Settings: ``mtlskit.toml`` in the home directory < ``MTLSKIT_*`` environment < flags.

Validated once, here, into a frozen object that the composition root hands on.
Nothing deeper in the tree reads the environment or the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from mtlskit.errors import BadInput

CONFIG_FILE = "mtlskit.toml"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings of one CA home.

    Attributes:
        home: the CA home directory.
        database_url: URL of the inventory: ``sqlite:///PATH`` (the home's inventory.db by
            default) or ``postgresql://USER@HOST:PORT/DB`` (psycopg 3; the password best
            in ~/.pgpass). Never printed whole: see ``mtlskit.store.sql.redact``.
        public_url: base URL where `mtlskit serve` is reachable by relying parties; when
            set, issued certificates carry CRL distribution point and OCSP/CA-issuer AIA.
        crl_days: days between a CRL's thisUpdate and nextUpdate.
        root_crl_days: the same for the root's CRL when an intermediate issues: it lists
            only intermediates, and signing it needs the root key, which may be offline.
        ocsp_refresh_seconds: how stale an OCSP answer may be across processes that
            share the database (the bound on seeing another process's revocation).
        metrics_token_file: a file (mode 0600) holding the bearer token `serve` requires on
            /metrics; None leaves /metrics open on the address `serve` listens on.
        subject: the ``[subject]`` table (country, state, locality, org, org_unit) as
            (key, value) pairs: defaults for the subject fields of `issue`, `sign` and
            `token create` (checked where used: ``issue.subject.SubjectOptions``).
        roles: the ``[roles]`` table as (role, selectors) pairs, lowest role first: which
            client certificates of the CA act with which role on the service (`serve
            --tls-port`); a selector is a certificate NAME (its CN) or ``ou:UNIT`` (one of
            its OUs). See :mod:`mtlskit.api.auth`.
        ui_session_minutes: how long a web UI session lasts after log-in (`serve --ui`;
            5 minutes to 7 days, checked at start).
    """

    home: Path
    database_url: str
    public_url: str | None = None
    crl_days: int = 7
    root_crl_days: int = 365
    ocsp_refresh_seconds: int = 5
    metrics_token_file: str | None = None
    subject: tuple[tuple[str, str], ...] = ()
    roles: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ui_session_minutes: int = 480

    @property
    def default_database(self) -> bool:
        """Is the inventory the home's own SQLite file (nothing to record in mtlskit.toml)?"""
        return self.database_url == default_database_url(self.home)

    @property
    def ca_dir(self) -> Path:
        return self.home / "ca"

    @property
    def crl_dir(self) -> Path:
        return self.home / "crl"

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE


_FIELDS = {
    "database_url": str,
    "public_url": str,
    "crl_days": int,
    "root_crl_days": int,
    "ocsp_refresh_seconds": int,
    "metrics_token_file": str,
    "ui_session_minutes": int,
}
SUBJECT_TABLE = "subject"
SUBJECT_KEYS = ("country", "state", "locality", "org", "org_unit")   # issue.subject.FIELDS
ROLES_TABLE = "roles"
# The roles of the service, lowest first; each includes those before it (api.auth).
ROLES = ("read", "issue", "revoke", "admin")
OU_SELECTOR = "ou:"


DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
ROOT_CRL_DAYS_MAX = 3650  # root_crl_days, `init --root-crl-days` and `crl --root-crl-days`


def default_database_url(home: Path) -> str:
    return f"sqlite:///{home / 'inventory.db'}"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("MTLSKIT_HOME"):
        return Path(environ["MTLSKIT_HOME"]).expanduser()
    return Path("~/.mtlskit").expanduser()


def load_settings(
    home: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read file, then environment, then explicit overrides; validate; return Settings.

    Raises:
        BadInput: the file is not valid TOML, or a value has the wrong type.
    """
    environ = os.environ if environ is None else environ
    home = (home or default_home(environ)).expanduser().resolve()
    values: dict[str, Any] = {}
    values.update(_read_file(home / CONFIG_FILE))
    subject = _subject_table(values.pop(SUBJECT_TABLE, {}), home / CONFIG_FILE)
    roles = _roles_table(values.pop(ROLES_TABLE, {}), home / CONFIG_FILE)
    for field in _FIELDS:
        env_value = environ.get(f"MTLSKIT_{field.upper()}")
        if env_value:
            values[field] = env_value
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    clean = {field: _coerce(field, values[field]) for field in _FIELDS if field in values}
    clean.setdefault("database_url", default_database_url(home))
    _check_database_url(clean["database_url"])
    if clean.get("public_url"):
        clean["public_url"] = _check_url(clean["public_url"])
    if clean.get("crl_days", 7) < 1:
        raise BadInput("crl_days must be at least 1")
    if not 1 <= clean.get("root_crl_days", 365) <= ROOT_CRL_DAYS_MAX:
        raise BadInput(f"root_crl_days must be between 1 and {ROOT_CRL_DAYS_MAX}")
    return Settings(home=home, subject=subject, roles=roles, **clean)


def write_settings_file(settings: Settings, values: Mapping[str, Any],
                        subject: Mapping[str, str] | None = None) -> None:
    """Write the given non-default values to mtlskit.toml (at init), and the ``[subject]``
    defaults when there are some."""
    lines = ["# mtlskit settings for this CA home; MTLSKIT_* variables and flags override these."]
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    if subject:
        lines += ["", "# Subject fields of issued certificates unless --org, --country, ... say otherwise.",
                  f"[{SUBJECT_TABLE}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in subject.items() if value]
    settings.config_file.write_text("\n".join(lines) + "\n")
    if values.get("database_url"):  # may hold the database's password: the owner's alone
        settings.config_file.chmod(0o600)


def _check_database_url(url: str) -> None:
    """A URL of a database mtlskit runs on; the refusal never repeats the URL (it may
    hold a password)."""
    scheme, separator, rest = url.partition("://")
    if not separator or not rest or scheme.split("+", 1)[0].lower() not in DATABASE_SCHEMES:
        raise BadInput("database_url is not a database URL: only SQLite and PostgreSQL are supported",
                       hint="use sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST:PORT/DB")


def _toml_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)  # a TOML basic string


def _subject_table(table: Any, path: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(table, dict):
        raise BadInput(f"{path}: [{SUBJECT_TABLE}] must be a table")
    unknown = set(table) - set(SUBJECT_KEYS)
    if unknown:
        raise BadInput(f"{path}: unknown [{SUBJECT_TABLE}] key(s): {', '.join(sorted(unknown))}",
                       hint=f"known keys: {', '.join(SUBJECT_KEYS)}")
    for key, value in table.items():
        if not isinstance(value, str):
            raise BadInput(f"{path}: [{SUBJECT_TABLE}] {key} must be a string, got {value!r}")
    return tuple((key, table[key]) for key in SUBJECT_KEYS if key in table)


def _roles_table(table: Any, path: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``[roles]``: role -> list of certificate NAMEs or ``ou:UNIT`` selectors."""
    if not isinstance(table, dict):
        raise BadInput(f"{path}: [{ROLES_TABLE}] must be a table")
    unknown = set(table) - set(ROLES)
    if unknown:
        raise BadInput(f"{path}: unknown role(s) in [{ROLES_TABLE}]: {', '.join(sorted(unknown))}",
                       hint=f"roles: {', '.join(ROLES)}")
    for role, selectors in table.items():
        if not isinstance(selectors, list) or not all(_selector_ok(s) for s in selectors):
            raise BadInput(f"{path}: [{ROLES_TABLE}] {role} must be a list of certificate NAMEs "
                           f"or \"ou:UNIT\" strings, got {selectors!r}",
                           hint='e.g. admin = ["alice", "ou:Ops"]')
    return tuple((role, tuple(table[role])) for role in ROLES if role in table)


def _selector_ok(selector: Any) -> bool:
    if not isinstance(selector, str) or not selector.strip() or selector != selector.strip():
        return False
    if selector.startswith(OU_SELECTOR) and not selector[len(OU_SELECTOR):].strip():
        return False
    return selector.isprintable()


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - set(_FIELDS) - {SUBJECT_TABLE, ROLES_TABLE}
    if unknown:
        raise BadInput(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}",
                       hint=f"known settings: {', '.join(_FIELDS)}")
    return data


def _coerce(field: str, value: Any) -> Any:
    wanted = _FIELDS[field]
    try:
        return wanted(value)
    except (TypeError, ValueError):
        raise BadInput(f"setting {field} must be {wanted.__name__}, got {value!r}") from None


def _check_url(url: str) -> str:
    if not (url.startswith("http://") or url.startswith("https://")):
        raise BadInput(f"public_url must start with http:// or https://, got {url!r}")
    return url.rstrip("/")
