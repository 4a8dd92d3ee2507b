"""The bytes `list` and `show` print, pinned against the records and the standard library.

`list` writes its JSON and its table straight from the stored rows (cli/listing.py,
LazyConsole.table: issue 12, one process under 150 ms with 10,000 certificates listed);
these compare what it prints with ``json.dumps(indent=2)`` of ``CertificateRecord.summary``
and with Rich's own table of the same records, on a home where every field is filled or
None: revoked (with a reason), superseded, expired, not yet valid, short-lived, with and
without SANs, the longest NAME (tests/unit/test_cli_console.py: what Rich would change).
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from mtlskit.cli import common
from mtlskit.clock import FixedClock
from mtlskit.issue.lifetime import is_managed, time_left
from tests.support_crl import make_home, open_service

START = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
NOW = START + dt.timedelta(days=3, minutes=7, seconds=11, microseconds=5)


def _at(monkeypatch, when: dt.datetime) -> None:
    monkeypatch.setattr(common, "SystemClock", lambda: FixedClock(when))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("listing")
    home = make_home(root)
    from mtlskit.cli.app import main

    def run(when: dt.datetime, *args: str) -> None:
        mp.setattr(common, "SystemClock", lambda: FixedClock(when))
        assert main(["--home", str(home), *args]) == 0, args

    try:
        out = lambda name: ["--out", str(root / name)]  # noqa: E731
        run(START - dt.timedelta(days=5), "issue", "client", "old", "--days", "1", *out("old"))  # expired
        run(START + dt.timedelta(days=10), "issue", "client", "later", *out("later"))   # not yet valid
        run(START, "issue", "server", "web.example", "--dns", "web.example", "--dns", "www.example",
            "--ip", "192.0.2.7", "--email", "ops@example.org", *out("web"))
        run(START, "issue", "client", "gone", *out("gone"))
        run(START, "revoke", "gone", "--reason", "key-compromise")
        run(START, "issue", "client", "rotated", "--days", "20", *out("rotated"))
        run(START + dt.timedelta(microseconds=250), "renew", "rotated")          # superseded
        run(START, "issue", "client", "brief", "--hours", "30", *out("brief"))   # short-lived
        run(START, "issue", "peer", "p" * 64, *out("long"))    # the longest NAME: the table is 160 wide
        run(START, "issue", "client", "soon", "--days", "25", *out("soon"))
    finally:
        mp.undo()
    return home


def _iso(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _records(home, **filters):
    service = open_service(home, FixedClock(NOW))
    return service.inventory.query(NOW, pem=False, **filters)


LISTINGS = [
    ([], {}),
    (["--status", "revoked"], {"status": "revoked"}),
    (["--status", "expired"], {"status": "expired"}),
    (["--status", "not-yet-valid"], {"status": "not-yet-valid"}),
    (["--profile", "server"], {"profile": "server"}),
    (["--expiring", "30d"], {"expiring_before": NOW + dt.timedelta(days=30)}),
    (["--expiring", "30d", "--all"], {"expiring_before": NOW + dt.timedelta(days=30)}),
    (["--profile", "ocsp"], {"profile": "ocsp"}),  # none: "[]"
]


def _filters(filters: dict) -> dict:
    from mtlskit.store.inventory import Status

    return {k: Status(v) if k == "status" else v for k, v in filters.items()}


@pytest.mark.parametrize(("args", "filters"), LISTINGS)
def test_list_json_is_json_dumps_of_the_record_summaries(home, cli, monkeypatch, args, filters):
    _at(monkeypatch, NOW)
    records = _records(home, **_filters(filters))
    expected = json.dumps([r.summary(NOW) | {"managed": is_managed(r.profile)} for r in records],
                          indent=2, default=_iso) + "\n"
    result = cli("--home", home, "list", *args, "--json")
    assert result.code == 0, result.err
    assert result.out == expected


def test_the_home_fills_every_field(home, cli, monkeypatch):
    _at(monkeypatch, NOW)
    listed = json.loads(cli("--home", home, "list", "--json").out)
    assert {item["status"] for item in listed} == {"valid", "expired", "revoked", "not-yet-valid"}
    assert any(item["superseded_by"] for item in listed) and any(item["superseded_by"] is None for item in listed)
    assert any(item["revoked_at"] and item["revocation_reason"] for item in listed)
    assert any(len(item["sans"]) >= 4 for item in listed) and any(item["hours_left"] < 48 for item in listed)


def _rich_table(records) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table("NAME", "PROFILE", "SERIAL", "STATUS", "NOT AFTER", "DAYS", box=None)
    for r in records:
        table.add_row(r.name, r.profile, r.serial_hex,
                      r.status_at(NOW).value + (", superseded" if r.superseded_by is not None else ""),
                      f"{r.not_after:%Y-%m-%d %H:%M}", time_left(r.not_before, r.not_after, NOW))
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True, width=160).print(table)
    return out.getvalue()


@pytest.mark.parametrize(("args", "filters"), LISTINGS)
def test_list_prints_rich_s_table_of_the_records(home, cli, monkeypatch, args, filters):
    _at(monkeypatch, NOW)
    records = _records(home, **_filters(filters))
    if "--expiring" in args and "--all" not in args:
        records = [r for r in records if not is_managed(r.profile)]
    result = cli("--home", home, "list", *args)
    assert result.code == 0, result.err
    assert result.out.startswith(_rich_table(records) + f"{len(records)} certificate(s)")


@pytest.mark.parametrize("target", ["web.example", "rotated", "gone", "old"])
def test_show_json_is_json_dumps_of_the_record_summary(home, cli, monkeypatch, target):
    _at(monkeypatch, NOW)
    service = open_service(home, FixedClock(NOW))
    record = service.inventory.by_name(target)[-1]
    expected = json.dumps([record.summary(NOW) | {"pem": record.pem}], indent=2, default=_iso) + "\n"
    result = cli("--home", home, "show", target, "--json")
    assert result.code == 0 and result.out == expected
