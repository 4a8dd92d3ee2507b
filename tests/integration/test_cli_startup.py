"""What a CLI process imports: only what the command it runs needs.

Every `mtlskit` run imports every command module (to parse its arguments and for
--help); the heavy implementation modules are imported inside the commands. These run
the CLI in a fresh Python process and list the heavy packages it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support_crl import make_home

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("rich", "jinja2", "alembic", "fastapi", "starlette", "uvicorn", "httpx", "pkilint",
         "mtlskit.deploy.render", "mtlskit.verify.verifier", "mtlskit.api")

# Runs the CLI in-process, once per argument list, and prints after each run which of
# the heavy packages are imported so far, with the exit code.
_PROBE = r"""
import json, sys
from mtlskit.cli.app import main
heavy, runs = sys.argv[1].split(","), json.loads(sys.argv[2])
report = []
for argv in runs:
    code = main(argv)
    loaded = sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in sys.modules))
    report.append({"argv": argv, "code": code, "loaded": loaded, "sqlalchemy": "sqlalchemy" in sys.modules,
                   "rich_console": "rich.console" in sys.modules,
                   "cryptography": "cryptography" in sys.modules})
print(json.dumps(report))
"""


def _imports(*runs: list[str]) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-c", _PROBE, ",".join(HEAVY), json.dumps(list(runs))],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("startup"))


def test_help_imports_no_implementation():
    [run] = _imports(["--help"])
    assert run["code"] == 0 and run["loaded"] == []
    assert not run["sqlalchemy"] and not run["cryptography"]


def test_issue_revoke_crl_import_nothing_heavy(home, tmp_path):
    h = str(home)
    runs = _imports(["--home", h, "issue", "client", "alice", "--out", str(tmp_path / "alice")],
                    ["--home", h, "revoke", "alice", "--reason", "superseded"],
                    ["--home", h, "crl", "--out", str(tmp_path / "ca.crl")],
                    ["--home", h, "list", "--json"])
    assert [r["code"] for r in runs] == [0, 0, 0, 0]
    assert [r["loaded"] for r in runs] == [[], [], [], []]  # no Rich, no Alembic, no Jinja2, ...
    assert (tmp_path / "alice" / "cert.pem").exists() and (tmp_path / "ca.crl").stat().st_size > 0


def test_commands_on_an_up_to_date_inventory_import_no_sqlalchemy_and_no_alembic(home, tmp_path):
    """SQLAlchemy (and Alembic) cost a process ~130-200 ms of start-up: they are imported
    only to migrate a database whose schema is behind (store/db.py)."""
    h = str(home)
    runs = _imports(["--home", h, "issue", "client", "nosql", "nosql-b", "--out", str(tmp_path / "nosql")],
                    ["--home", h, "list", "--expiring", "30d", "--json"], ["--home", h, "show", "nosql"],
                    ["--home", h, "renew", "nosql", "--out", str(tmp_path / "renewed")],
                    ["--home", h, "revoke", "nosql-b"], ["--home", h, "crl", "--out", str(tmp_path / "n.crl")])
    assert [r["code"] for r in runs] == [0] * 6
    assert [r["sqlalchemy"] for r in runs] == [False] * 6
    assert ["alembic" in r["loaded"] for r in runs] == [False] * 6


def test_refusals_print_without_rich(home):
    runs = _imports(["--home", str(home), "revoke", "nobody"], ["--home", str(home), "issue", "nope", "x"])
    assert [r["code"] for r in runs] == [3, 2]
    assert [r["loaded"] for r in runs] == [[], []]


def test_list_and_show_import_no_cryptography_and_no_rich(home, tmp_path):
    """They sign nothing: no cryptography (~50 ms), and `list`'s table is written without
    Rich when Rich would print it as is (issue 12: one process under 150 ms); `show` at most
    reads Rich's emoji table (its client URI SAN "URI:https://..." holds ":https:")."""
    h = str(home)
    [issued] = _imports(["--home", h, "issue", "client", "shown", "--out", str(tmp_path / "shown")])
    runs = _imports(["--home", h, "list", "--json"], ["--home", h, "list", "--expiring", "3000d", "--json"],
                    ["--home", h, "list"], ["--home", h, "list", "--status", "valid"],
                    ["--home", h, "show", "shown"], ["--home", h, "show", "shown", "--json"],
                    ["--home", h, "show", "shown", "--pem"])
    assert issued["code"] == 0 and [r["code"] for r in runs] == [0] * 7
    assert [r["cryptography"] for r in runs] == [False] * 7
    assert [r["rich_console"] for r in runs] == [False] * 7  # rich._emoji_codes at most: `show`'s URI SAN
    assert all(r["loaded"] in ([], ["rich"]) for r in runs)


def test_list_expiring_reads_the_ca_certificates(home):
    """`list --expiring` without --json also prints the CA certificates' expiry (cryptography)."""
    [run] = _imports(["--home", str(home), "list", "--expiring", "30d"])
    assert run["code"] == 0 and run["cryptography"] and run["loaded"] == []


def test_an_outdated_database_is_still_migrated(tmp_path):
    """Alembic is imported when (and only when) the schema is behind."""
    home = make_home(tmp_path)
    import sqlite3

    with sqlite3.connect(home / "inventory.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0001'")  # as before 0002_crl
        db.execute("DROP TABLE crl_entries")
        db.execute("ALTER TABLE crl_state DROP COLUMN entry_count")
        db.execute("ALTER TABLE crl_state DROP COLUMN published_number")   # 0003_crl_published
        db.execute("DROP TABLE enrollment_tokens")                          # 0004_lifecycle
        db.execute("ALTER TABLE certificates DROP COLUMN directory")
        db.execute("ALTER TABLE certificates DROP COLUMN superseded_by")
        db.execute("DROP TABLE api_tokens")                                 # 0005_service
        db.execute("DROP TABLE change_counters")
    runs = _imports(["--home", str(home), "list", "--json"])
    assert runs[0]["code"] == 0 and "alembic" in runs[0]["loaded"] and runs[0]["sqlalchemy"]
    [again] = _imports(["--home", str(home), "list", "--json"])  # now up to date
    assert again["code"] == 0 and again["loaded"] == [] and not again["sqlalchemy"]


def test_gc_is_tuned_only_for_a_process_of_its_own():
    """main() without argv (the `mtlskit` script) tunes the collector; tests calling
    main(argv) in-process keep Python's defaults."""
    import gc

    from mtlskit.cli.app import main
    from mtlskit.cli.common import SHORT_LIVED_GC

    before = gc.get_threshold()
    assert main(["--help"]) == 0 and gc.get_threshold() == before
    script = ("import gc, sys; from mtlskit.cli.app import main; sys.argv = ['mtlskit', '--help']; "
              "code = main(); print(gc.get_threshold(), code, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60)
    assert result.stderr.strip() == f"{SHORT_LIVED_GC} 0"
    assert "Usage: mtlskit" in result.stdout


# What one CLI process imports, pinned per command: the command modules (only the one of
# the command that runs), the third-party packages, and the mtlskit subpackages whose
# modules it loads. A new top-level import of something heavy (Pydantic, Rich, Alembic,
# requests, the deploy or serve code, ...) into a command's path fails here; if it is
# needed, change the pin here and say why in the commit.
_PIN_PROBE = r"""
import contextlib, io, json, sys
from mtlskit.cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(json.loads(sys.argv[1]))
names = set(sys.modules)
third = sorted({m.split(".")[0] for m in names if not m.startswith(("_", "mtlskit"))}
               - set(sys.stdlib_module_names) - {"__main__"})
print(json.dumps({"code": code, "third_party": third,
                  "commands": sorted(m.rsplit(".", 1)[1] for m in names
                                     if m.startswith("mtlskit.cli.") and m.endswith("_cmd")),
                  "subpackages": sorted({m.split(".")[1] for m in names
                                         if m.startswith("mtlskit.") and m.count(".") >= 2})}))
"""

TYPER = ["annotated_doc", "shellingham", "typer"]  # typer and what it imports
# plain SQL on sqlite3 (mtlskit.store.sql): no SQLAlchemy, no Alembic unless migrating
DATABASE = sorted(TYPER + ["cryptography"])
READ_ONLY = TYPER  # list and show sign nothing: no cryptography (~50 ms; service.py, ca/home.py)
CORE = ["ca", "cli", "issue", "pki", "store"]  # issue: its journal, swept before each command


def _pinned(argv: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-c", _PIN_PROBE, json.dumps(argv)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def pin_home(tmp_path_factory):
    """A CA home with three clients, pin-b (to show), pin-c (to revoke), pin-d (to renew)."""
    from mtlskit.cli.app import main

    work = tmp_path_factory.mktemp("pin")
    home = make_home(work)
    assert main(["--home", str(home), "issue", "client", "pin-b", "pin-c", "pin-d", "--out", str(work / "out")]) == 0
    return home


@pytest.mark.parametrize("argv, command, third_party, subpackages", [
    (["issue", "client", "pin-a", "--out", "{tmp}/pin-a"], "issue_cmd", DATABASE, CORE),
    (["list", "--json"], "inventory_cmd", READ_ONLY, CORE),
    (["list", "--expiring", "30d", "--json"], "inventory_cmd", READ_ONLY, CORE),
    (["list"], "inventory_cmd", READ_ONLY, CORE),  # its table without Rich (LazyConsole.table)
    # ":https:" (a URI SAN) could be an emoji code: Rich's emoji table says (rich._emoji_codes only)
    (["show", "pin-b"], "inventory_cmd", sorted(READ_ONLY + ["rich"]), CORE),
    (["revoke", "pin-c"], "revoke_cmd", DATABASE, sorted(CORE + ["publish", "revoke"])),
    (["crl", "--out", "{tmp}/pin.crl"], "revoke_cmd", DATABASE, sorted(CORE + ["publish", "revoke"])),
    (["renew", "pin-d"], "renew_cmd", DATABASE, sorted(CORE + ["lifecycle"])),
    (["alerts"], "alerts_cmd", TYPER, ["cli", "metrics", "pki"]),  # rule text only: no database, no prometheus-client
])
def test_each_command_imports_what_is_pinned(pin_home, tmp_path, argv, command, third_party, subpackages):
    run = _pinned(["--home", str(pin_home), *[a.replace("{tmp}", str(tmp_path)) for a in argv]])
    assert run["code"] == 0
    shared = ["issue_cmd"] if command == "renew_cmd" else []  # renew runs issue's signal handling
    assert run["commands"] == sorted([command, *shared])  # no other command module, no deploy or serve code
    assert run["third_party"] == third_party  # no Pydantic, Rich, Alembic, Jinja2, ...
    assert run["subpackages"] == subpackages


@pytest.mark.parametrize("command, subpackages", [
    ("init", []), ("issue", []), ("sign", []), ("list", []), ("show", []), ("inspect", []),
    ("export", []), ("revoke", ["revoke"]), ("crl", ["revoke"]), ("serve", []), ("deploy", ["deploy"]),
    ("verify", []), ("probe", []), ("renew", []), ("alerts", [])])  # revoke.reasons, deploy.headers: for their options' help
def test_help_of_a_command_imports_only_its_module_and_typer(command, subpackages):
    run = _pinned([command, "--help"])
    assert run["code"] == 0
    assert len(run["commands"]) == 1 and run["third_party"] == TYPER
    assert run["subpackages"] == sorted(["cli", "pki", *subpackages])  # pki.reference: cli/params.py's switch


def test_every_command_is_found_by_name_without_importing_the_others():
    """Each command of COMMAND_MODULES is run with its own module alone (app.modules_for):
    a module named after its command (``mtlskit.cli.<command>_cmd``) or listed in
    COMMAND_HOMES."""
    import importlib

    import typer

    from mtlskit.cli.app import COMMAND_MODULES, modules_for

    for module_name in COMMAND_MODULES:
        app = typer.Typer()
        app.callback()(lambda: None)
        importlib.import_module(module_name).register(app)
        for name in typer.main.get_command(app).commands:
            found = modules_for(["--home", "x", "--debug", name, "--help"], tuple(COMMAND_MODULES))
            assert found == (module_name,), (name, found)


def test_global_help_and_unknown_commands_load_every_module():
    from mtlskit.cli.app import COMMAND_MODULES, main, modules_for

    every = tuple(COMMAND_MODULES)
    for args in ([], ["--help"], ["--home", "x"], ["--bogus", "list"], ["nosuch"], ["--home=x", "--help"]):
        assert modules_for(args, every) == every
    assert modules_for(["--home=x", "list"], every) == ("mtlskit.cli.inventory_cmd",)
    assert main(["nosuch"]) == 2  # click's "No such command", from the full parser
