"""`mtlskit token create|list|revoke`: single-use enrollment tokens for `mtlskit enroll`;
`mtlskit token api ...`: bearer tokens of the REST API (:mod:`mtlskit.cli.token_api_cmd`)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from mtlskit.cli.common import (console, country_option, hours_option, locality_option, open_service, org_option,
                                org_unit_option, parse_duration, print_json, state_option, subject_options)

token_app = typer.Typer(help="Single-use enrollment tokens (for `mtlskit enroll` on a remote host).",
                        no_args_is_help=True)


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="NAME of the certificate the token enrolls (subject CN)."),
    profile: str = typer.Option(..., "--profile", help="server | client | peer"),
    dns: List[str] = typer.Option([], "--dns", help="DNS SAN the certificate gets (repeatable)."),
    ip: List[str] = typer.Option([], "--ip", help="IP SAN (repeatable)."),
    email: List[str] = typer.Option([], "--email", help="Email SAN (repeatable)."),
    uri: List[str] = typer.Option([], "--uri", help="URI SAN (repeatable)."),
    ttl: str = typer.Option("15m", "--ttl", help="How long the token may be used (e.g. 15m, 2h; at most 30d)."),
    days: Optional[int] = typer.Option(None, "--days", help="Lifetime of the certificate (default: the profile's)."),
    hours: Optional[int] = hours_option(),
    country: Optional[str] = country_option(),
    state: Optional[str] = state_option(),
    locality: Optional[str] = locality_option(),
    org: Optional[str] = org_option(),
    org_unit: Optional[str] = org_unit_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Print a single-use enrollment token bound to NAME, the profile and the SANs, alone on
    the last line of the output. Only its SHA-256 is stored: it cannot be shown again."""
    from mtlskit.issue.issuer import SanRequest
    from mtlskit.lifecycle.tokens import TokenGrant, create_token

    subject = subject_options(ctx, country=country, state=state, locality=locality, org=org, org_unit=org_unit)
    grant = TokenGrant(name, profile, SanRequest(tuple(dns), tuple(ip), tuple(email), tuple(uri)), days, hours, subject)
    lifetime = parse_duration(ttl)
    service = open_service(ctx)
    token, expires_at = create_token(service, grant, lifetime)
    if json_out:
        print_json({"name": name, "profile": profile, "expires_at": expires_at, "token": token})
        return
    console.print(f"enrollment token for {name} ({profile}), single use, valid until "
                  f"{expires_at:%Y-%m-%d %H:%M:%S} UTC:", markup=False, highlight=False)
    sys.stdout.flush()
    sys.stdout.write(token + "\n")


@token_app.command("list")
def list_(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
    """The enrollment tokens: NAME, profile, state (pending, used, expired), expiry. No secrets."""
    from mtlskit.lifecycle.tokens import list_tokens

    service = open_service(ctx)
    now = service.clock.now()
    rows = [{"name": t.name, "profile": t.profile, "state": t.state_at(now), "created_at": t.created_at,
             "expires_at": t.expires_at, "used_at": t.used_at, "serial": t.used_serial,
             "sans": [f"{kind.upper() if kind != 'email' else kind}:{v}" for kind in ("dns", "ip", "email", "uri")
                      for v in t.grant.get(kind, [])]} for t in list_tokens(service)]
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("no enrollment tokens", markup=False)
    for row in rows:
        console.print(f"{row['name']}  {row['profile']}  {row['state']}  expires {row['expires_at']:%Y-%m-%d %H:%M:%S}"
                      + (f"  serial {row['serial']}" if row["serial"] else ""), markup=False, highlight=False)


@token_app.command("revoke")
def revoke(ctx: typer.Context, name: str = typer.Argument(..., help="NAME whose pending tokens to revoke."),
           json_out: bool = typer.Option(False, "--json")) -> None:
    """Revoke the pending (unused, unexpired) enrollment tokens of NAME."""
    from mtlskit.lifecycle.tokens import revoke_tokens

    count = revoke_tokens(open_service(ctx), name)
    if json_out:
        print_json({"name": name, "revoked": count})
    else:
        console.print(f"revoked {count} pending enrollment token{'s' if count != 1 else ''} of {name}", markup=False)


def register(app: typer.Typer) -> None:
    from mtlskit.cli.token_api_cmd import api_app

    token_app.add_typer(api_app, name="api")
    app.add_typer(token_app, name="token")
