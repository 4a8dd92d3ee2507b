"""`list` and `list --json` written straight from the inventory's rows (Inventory.summary_rows).

The same bytes as ``json.dumps([record.summary(now) | {"managed": ...}, ...], indent=2)``
with datetimes in ISO form (tests/integration/test_list_show_output.py pins it), without a
record, a dict or an encoder hook per certificate: each object is one template filled with
strings the C string encoder quotes (the columns it quotes are NOT NULL). 10,000
certificates take ~35 ms here, ~160 ms through CertificateRecord and json_text (issue 12:
one `list` process under 150 ms).
"""

from __future__ import annotations

import datetime as dt
import json
from json.encoder import encode_basestring_ascii as _quoted  # the C function json.dumps uses
from typing import Callable, Sequence

from mtlskit.store.inventory import stored_utc

_HOUR = dt.timedelta(hours=1)
_fromisoformat = dt.datetime.fromisoformat
_decode = json.JSONDecoder().decode
_SANS = json.JSONEncoder(separators=(",\n      ", ": "))  # a list inside an object of a list


def _text(value: str | None) -> str:
    return "null" if value is None else _quoted(value)


def _serial(stored: str | None) -> str:
    """As the record reads it: an int, printed again in lower-case hex."""
    return "null" if stored is None else f'"{int(stored, 16):x}"'


def _canonical(stored: str) -> bool:
    """A list of strings as json.dumps writes it, no escape in it: ["a", "b"]. Without a
    backslash every quote delimits an item, so 2n quotes and n-1 '", "' are all of it."""
    return (stored.isascii() and "\\" not in stored and stored[:2] == '["' and stored[-2:] == '"]'
            and stored.count('"') == 2 * stored.count('", "') + 2)


def _sans(stored: str) -> str:
    if stored == "[]":
        return "[]"
    if _canonical(stored):  # as json.dumps wrote it: its items' text is already what is printed
        return "[\n      " + stored[1:-1].replace('", "', '",\n      "') + "\n    ]"
    values = _decode(stored)
    try:
        return "[\n      " + ",\n      ".join([_quoted(value) for value in values]) + "\n    ]"
    except TypeError:  # not only strings
        return "[\n      " + _SANS.encode(values)[1:-1] + "\n    ]"


def _sqlite_text(stored) -> bool:
    """SQLite's text of a datetime (store.sql.sqlite_datetime): "YYYY-MM-DD HH:MM:SS.ffffff"."""
    return type(stored) is str and len(stored) == 26 and stored[10] == " " and stored[19] == "."


def _moment(stored) -> tuple[dt.datetime, str]:
    """A stored datetime as a naive UTC datetime and its ISO text as the record prints it.
    SQLite's text "YYYY-MM-DD HH:MM:SS.ffffff" is read inline; anything else by stored_utc."""
    if _sqlite_text(stored):
        moment = _fromisoformat(stored)
        if stored[20:] == "000000":   # isoformat() leaves out zero microseconds
            return moment, f"{stored[:10]}T{stored[11:19]}+00:00"
        return moment, f"{stored[:10]}T{stored[11:]}+00:00"
    moment = stored_utc(stored)
    return moment.replace(tzinfo=None), moment.isoformat()


def _iso(value) -> str:
    return "null" if value is None else '"' + stored_utc(value).isoformat() + '"'


def _state(status: str, before: dt.datetime, after: dt.datetime, now: dt.datetime) -> str:
    """CertificateRecord.status_at(now).value."""
    if status == "revoked":
        return "revoked"
    if after <= now:
        return "expired"
    return "not-yet-valid" if before > now else "valid"


def _naive_utc(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.timezone.utc).replace(tzinfo=None)  # compared with naive UTC moments


def table_rows(rows: Sequence[tuple], now: dt.datetime) -> list[tuple[str, ...]]:
    """The cells of `list`'s table (NAME, PROFILE, SERIAL, STATUS, NOT AFTER, DAYS) of ``rows``."""
    from mtlskit.issue.lifetime import time_left

    now = _naive_utc(now)
    cells = []
    for (name, serial, _issuer, profile, status, _subject, _sans, _key_type, not_before, not_after,
         _revoked_at, _reason, _fingerprint, superseded_by) in rows:
        before, after = _moment(not_before)[0], _moment(not_after)[0]
        state = _state(status, before, after, now) + ("" if superseded_by is None else ", superseded")
        shown = not_after[:16] if _sqlite_text(not_after) else f"{after:%Y-%m-%d %H:%M}"
        cells.append((name, profile, f"{int(serial, 16):x}", state, shown,
                      time_left(before, after, now)))
    return cells


def summaries_json(rows: Sequence[tuple], now: dt.datetime, managed: Callable[[str], bool]) -> str:
    """The JSON list of the summaries of ``rows`` (SUMMARY_COLUMNS), each with "managed"."""
    if not rows:
        return "[]"
    objects = []
    now = _naive_utc(now)
    for (name, serial, issuer, profile, status, subject, sans, key_type, not_before, not_after,
         revoked_at, reason, fingerprint, superseded_by) in rows:
        (before, before_text), (after, after_text) = _moment(not_before), _moment(not_after)
        state = _state(status, before, after, now)
        left = after - now
        objects.append(
            f'  {{\n    "name": {_quoted(name)},\n    "serial": {_serial(serial)},\n'
            f'    "issuer": {_quoted(issuer)},\n    "profile": {_quoted(profile)},\n'
            f'    "status": "{state}",\n    "subject": {_quoted(subject)},\n    "sans": {_sans(sans)},\n'
            f'    "key_type": {_quoted(key_type)},\n    "not_before": "{before_text}",\n'
            f'    "not_after": "{after_text}",\n    "days_left": {left.days},\n'
            f'    "hours_left": {left // _HOUR},\n    "revoked_at": {_iso(revoked_at)},\n'
            f'    "revocation_reason": {_text(reason)},\n    "fingerprint_sha256": {_quoted(fingerprint)},\n'
            f'    "superseded_by": {_serial(superseded_by)},\n'
            f'    "managed": {"true" if managed(profile) else "false"}\n  }}')
    return "[\n" + ",\n".join(objects) + "\n]"
