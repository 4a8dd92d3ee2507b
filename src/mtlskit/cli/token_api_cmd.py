"""`mtlskit token api create|list|revoke`: bearer tokens of the REST API (`serve --api`).

Attached under `mtlskit token` by :mod:`mtlskit.cli.token_cmd` (enrollment tokens stay
`mtlskit token create|list|revoke`).
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from mtlskit.cli.common import console, open_service, parse_duration, print_json

api_app = typer.Typer(help="Bearer tokens of the REST API, each with a role: read < issue < revoke < admin.",
                      no_args_is_help=True)


@api_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="NAME of the token (who uses it; shown in the audit trail as token:NAME)."),
    role: str = typer.Option(..., "--role", help="read | issue | revoke | admin (each includes those before it)."),
    ttl: Optional[str] = typer.Option(None, "--ttl", help="Lifetime, e.g. 90d, 12h (default: until revoked)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Print a new API token, alone on the last line of the output. Only its SHA-256 is
    stored: it cannot be shown again."""
    from mtlskit.api.token import check_role, check_token_name, create_api_token

    check_token_name(name)
    check_role(role)
    lifetime = parse_duration(ttl) if ttl is not None else None
    token, stored = create_api_token(open_service(ctx), name, role, lifetime)
    if json_out:
        print_json({"name": stored.name, "role": stored.role, "expires_at": stored.expires_at, "token": token})
        return
    until = f"until {stored.expires_at:%Y-%m-%d %H:%M:%S} UTC" if stored.expires_at else "until revoked"
    console.print(f"API token {stored.name} (role {stored.role}), {until}; send it as "
                  "'Authorization: Bearer <token>':", markup=False, highlight=False)
    sys.stdout.flush()
    sys.stdout.write(token + "\n")


@api_app.command("list")
def list_(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
    """The API tokens: NAME, role, state (active, expired, revoked), dates. Never the tokens."""
    from mtlskit.store.api_tokens import list_api_tokens

    service = open_service(ctx)
    now = service.clock.now()
    rows = [{"name": t.name, "role": t.role, "state": t.state_at(now), "created_at": t.created_at,
             "expires_at": t.expires_at, "revoked_at": t.revoked_at, "last_used_at": t.last_used_at}
            for t in list_api_tokens(service.inventory.db)]
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("no API tokens", markup=False)
    for row in rows:
        expires = f"expires {row['expires_at']:%Y-%m-%d %H:%M}" if row["expires_at"] else "no expiry"
        used = f"last used {row['last_used_at']:%Y-%m-%d %H:%M}" if row["last_used_at"] else "never used"
        console.print(f"{row['name']}  {row['role']}  {row['state']}  {expires}  {used}", markup=False, highlight=False)


@api_app.command("revoke")
def revoke(ctx: typer.Context, name: str = typer.Argument(..., help="NAME of the token."),
           json_out: bool = typer.Option(False, "--json")) -> None:
    """Revoke an API token: refused from the next request on, by every serve worker."""
    from mtlskit.store.api_tokens import revoke_api_token

    service = open_service(ctx)
    stored = revoke_api_token(service.inventory.db, name, service.clock.now())
    if json_out:
        print_json({"name": stored.name, "revoked_at": stored.revoked_at})
    else:
        console.print(f"revoked API token {stored.name} (since {stored.revoked_at:%Y-%m-%d %H:%M:%S} UTC)",
                      markup=False, highlight=False)
