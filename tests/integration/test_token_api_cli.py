"""`mtlskit token api create|list|revoke`: the token alone on the last line, only its hash
stored, never shown again; refusals with one `error:` line and nothing written; enrollment
tokens untouched; and the start-up cost of the commands."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.integration.test_cli_startup import _imports
from tests.support_crl import make_home


@pytest.fixture()
def home(tmp_path):
    return make_home(tmp_path)


def _rows(home):
    """What the store holds, on whatever database the home uses."""
    from mtlskit.config import load_settings
    from mtlskit.service import Service

    with Service.open(load_settings(home)).inventory.db.read() as tx:
        return [tuple(row) for row in tx.all("SELECT name, role, token_sha256, expires_at, revoked_at FROM api_tokens")]


def test_create_prints_the_token_alone_on_its_last_line_and_stores_only_its_hash(cli, home):
    result = cli("--home", home, "token", "api", "create", "ci", "--role", "issue", "--ttl", "30d")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    token = lines[-1]
    assert token.startswith("mtk_") and " " not in token and len(token) == 47
    assert "role issue" in lines[0] and token not in lines[0]
    [(name, role, digest, expires_at, revoked_at)] = _rows(home)
    assert (name, role, revoked_at) == ("ci", "issue", None) and expires_at is not None
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    listed = cli("--home", home, "token", "api", "list")
    assert "ci  issue  active" in listed.out and token not in listed.out
    as_json = cli("--home", home, "token", "api", "list", "--json")
    assert token not in as_json.out and json.loads(as_json.out)[0]["last_used_at"] is None
    events = cli("--home", home, "show", "ci")  # not a certificate: tokens live apart
    assert events.code == 3


def test_revoke_then_list_says_revoked(cli, home):
    assert cli("--home", home, "token", "api", "create", "ops", "--role", "read").code == 0
    result = cli("--home", home, "token", "api", "revoke", "ops")
    assert result.code == 0 and "revoked API token ops" in result.out
    assert json.loads(cli("--home", home, "token", "api", "list", "--json").out)[0]["state"] == "revoked"
    again = cli("--home", home, "token", "api", "revoke", "ops")  # the first date stands
    assert again.code == 0


@pytest.mark.parametrize("args, code, says", [
    (["create", "x", "--role", "root"], 2, "'root' is not a role"),
    (["create", "x", "--role", "Admin"], 2, "is not a role"),
    (["create", "bad name", "--role", "read"], 2, "is not a token NAME"),
    (["create", "a\nb", "--role", "read"], 2, "is not a token NAME"),
    (["create", "-x", "--role", "read"], 2, ""),
    (["create", "api-token", "--role", "read"], 2, "reserved"),
    (["create", "x", "--role", "read", "--ttl", "forever"], 2, "not a duration"),
    (["create", "x", "--role", "read", "--ttl", "0"], 2, "above zero"),
    (["revoke", "nobody"], 3, "no API token named 'nobody'"),
])
def test_refusals_write_nothing(cli, home, args, code, says):
    result = cli("--home", home, "token", "api", *args)
    assert result.code == code, result.out + result.err
    assert result.err.startswith("error: ") and says in result.err
    assert _rows(home) == []


def test_a_name_is_never_reused(cli, home):
    assert cli("--home", home, "token", "api", "create", "ci", "--role", "read").code == 0
    assert cli("--home", home, "token", "api", "revoke", "ci").code == 0
    result = cli("--home", home, "token", "api", "create", "ci", "--role", "admin")
    assert result.code == 4 and "already exists" in result.err
    assert [r[1] for r in _rows(home)] == ["read"]


def test_enrollment_tokens_stay_as_they_were(cli, home):
    result = cli("--home", home, "token", "create", "web1", "--profile", "server", "--dns", "web1.example")
    assert result.code == 0 and len(result.out.splitlines()[-1]) >= 43
    assert "web1  server  pending" in cli("--home", home, "token", "list").out
    assert _rows(home) == []


def test_token_api_commands_import_no_web_framework(home):
    runs = _imports(["--home", str(home), "token", "api", "create", "ci", "--role", "read"],
                    ["--home", str(home), "token", "api", "list", "--json"],
                    ["--home", str(home), "token", "api", "revoke", "ci"])
    assert [r["code"] for r in runs] == [0, 0, 0]
    # mtlskit.api.token (no FastAPI in it) is all of mtlskit.api they load
    assert [r["loaded"] for r in runs] == [["mtlskit.api"], ["mtlskit.api"], ["mtlskit.api"]]
