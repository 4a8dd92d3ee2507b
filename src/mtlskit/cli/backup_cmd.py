"""`mtlskit backup FILE` and `mtlskit restore FILE`."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from pathlib import Path
from typing import Optional

import typer

from mtlskit.cli.common import console, err_console, print_json, settings_of, state_of
from mtlskit.errors import BadInput

# The backup package (tarfile, sqlite3) is imported inside the commands.


def backup(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The archive to write (a new file; mode 0600).", metavar="FILE"),
    force: bool = typer.Option(False, "--force", help="Replace FILE if it exists (a link is replaced, not followed)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result (path, SHA-256, manifest) as JSON."),
) -> None:
    """Write an online, consistent backup of the CA home: the inventory, the CA
    certificates and key files (encrypted as they are in the home), mtlskit.toml, and a
    manifest with the SHA-256 of each. `serve`, `revoke` and issuance may run meanwhile."""
    from mtlskit.backup.create import take_backup

    settings = settings_of(ctx)
    with _progress(json_out, "backing up") as progress, _file_errors():
        result = take_backup(settings, file, dt.datetime.now(dt.timezone.utc), force, progress)
    manifest = result.manifest
    if json_out:
        print_json({"path": str(result.path), "size": result.size, "sha256": result.sha256,
                    "manifest": _manifest_summary(manifest)})
        return
    counts = manifest.inventory
    console.print(f"backup written: {result.path} ({_size(result.size)}; {counts['certificates']} certificates, "
                  f"{counts['revoked']} revoked; {manifest.dialect} schema {manifest.schema_revision})", markup=False)
    console.print(f"sha256: {result.sha256}  (keep it apart from the archive; "
                  f"`restore --expect-sha256` checks it)", markup=False)
    _print_keys(manifest)


def restore(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="An archive written by `mtlskit backup`.", metavar="FILE"),
    home: Optional[Path] = typer.Option(None, "--home", help="Home to restore into (default: the global --home, "
                                        "$MTLSKIT_HOME, else ~/.mtlskit). Must be new or empty without --force."),
    force: bool = typer.Option(False, "--force", help="Restore over a home that is not empty; what it holds is "
                               "moved into HOME/replaced-<time>/."),
    expect_sha256: Optional[str] = typer.Option(None, "--expect-sha256", help="The archive's SHA-256 as `backup` "
                                                "printed it: refuse any other archive."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="PostgreSQL backups: the (empty) "
                                               "database to restore into."),
    check_only: bool = typer.Option(False, "--check", help="Only check the archive (manifest, every SHA-256, "
                                    "the database copy) and write nothing to any home."),
    json_out: bool = typer.Option(False, "--json", help="Print the result (path, SHA-256, manifest) as JSON."),
) -> None:
    """Restore a backup into a home: checks the manifest and every member's SHA-256
    before writing anything, refuses a home in use by `serve`, and gives keys 0600 and
    directories 0700."""
    from mtlskit.backup.restore import restore_backup
    from mtlskit.config import default_home

    if check_only:
        from mtlskit.backup.restore import check_backup

        _print_checked(check_backup(file, expect_sha256), file, json_out)
        return
    target = (home or state_of(ctx).home or default_home()).expanduser()
    with _progress(json_out, "restoring") as progress, _file_errors():
        result = restore_backup(file, target, dt.datetime.now(dt.timezone.utc), force,
                                database_url=database_url or state_of(ctx).database_url, progress=progress, expect_sha256=expect_sha256)
    manifest = result.manifest
    if json_out:
        print_json({"home": str(result.home), "replaced_into": str(result.replaced_into or "") or None,
                    "manifest": _manifest_summary(manifest)})
        return
    counts = manifest.inventory
    console.print(f"restored into {result.home}: backup of {manifest.created_at} ({counts['certificates']} "
                  f"certificates, {counts['revoked']} revoked; {manifest.dialect} schema {manifest.schema_revision})",
                  markup=False)
    if result.replaced_into is not None:
        console.print(f"what the home held before is in {result.replaced_into}", markup=False)
    _print_keys(manifest)


@contextlib.contextmanager
def _file_errors():
    """A file system refusal (permissions, a full disk) as one line, exit 2."""
    try:
        yield
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise BadInput(f"cannot write{where}: {exc.strerror or exc}") from None


def _print_checked(manifest, file: Path, json_out: bool) -> None:
    if json_out:
        print_json({"checked": str(file), "manifest": _manifest_summary(manifest)})
        return
    counts = manifest.inventory
    console.print(f"{file}: intact; backup of {manifest.created_at} by mtlskit {manifest.mtlskit_version} "
                  f"({counts['certificates']} certificates, {counts['revoked']} revoked; {manifest.dialect} "
                  f"schema {manifest.schema_revision}; {len(manifest.members)} members, each SHA-256 checked)",
                  markup=False)
    _print_keys(manifest)


def _manifest_summary(manifest) -> dict:
    return {"format_version": manifest.format_version, "mtlskit_version": manifest.mtlskit_version,
            "schema_revision": manifest.schema_revision, "created_at": manifest.created_at,
            "database": manifest.dialect, "inventory": manifest.inventory, "keys": manifest.keys,
            "members": [{"name": m.name, "size": m.size, "sha256": m.sha256} for m in manifest.members]}


def _print_keys(manifest) -> None:
    inside = [name for name, state in manifest.keys.items() if state == "in-archive"]
    token = [name for name, state in manifest.keys.items() if state == "in-token"]
    outside = [name for name, state in manifest.keys.items() if state == "not-in-archive"]
    if inside:
        console.print(f"CA keys in the archive (the files of the home, as they are: encrypted unless --no-passphrase): {', '.join(inside)}", markup=False)
    if token:
        err_console.print(f"warning: the {', '.join(token)} CA key(s) are in a PKCS#11 token, NOT in this archive "
                          "(it holds only where they are): the restored home needs that token", markup=False)
    if outside:
        err_console.print(f"warning: the {', '.join(outside)} CA key(s) are NOT in this archive (kept off this "
                          "machine): keep them safe separately", markup=False)


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


class _progress:
    """A Rich progress bar on stderr when it is a terminal (and not --json); else nothing."""

    def __init__(self, quiet: bool, label: str) -> None:
        self.bar = self.tasks = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(f"{label} {{task.description}}"), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                                console=err_console.rich, transient=True)
            self.tasks = {}

    def __enter__(self):
        if self.bar is None:
            return None
        self.bar.start()

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in self.tasks:
                self.tasks[stage] = self.bar.add_task(stage, total=total or 1)
            self.bar.update(self.tasks[stage], completed=done, total=total or 1)
        return advance

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
