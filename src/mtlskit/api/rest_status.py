"""Status routes of the REST API: the CRLs and the deployments (``read``), who am I
(``read``), and the audit trail (``admin``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mtlskit.api.problems import InvalidRequest
from mtlskit.api.rest import requires

MAX_EVENTS = 1000


def add_routes(routes: APIRouter, api) -> None:
    @routes.get("/crls")
    async def crls(_caller=Depends(requires(api, "read"))) -> JSONResponse:
        """Per CA: the current CRL's number, thisUpdate, nextUpdate, entries, whether it is
        due for re-signing (past half its life, as `serve` re-signs it) or stale (past nextUpdate)."""
        return JSONResponse(await run_in_threadpool(crl_status, api.service))

    @routes.get("/deployments")
    async def deployments(_caller=Depends(requires(api, "read"))) -> JSONResponse:
        """What `mtlskit deploy` installed: server, NAME, directory, revocation mode, options."""
        return JSONResponse(await run_in_threadpool(deployment_list, api.service))


    @routes.get("/whoami")
    async def whoami(caller=Depends(requires(api, "read"))) -> JSONResponse:
        """The caller as the service sees it: name, role, how it authenticated, and its audit ``by``."""
        return JSONResponse({"name": caller.name, "role": caller.role, "via": caller.via, "by": caller.audit_by})

    @routes.get("/events", responses={422: {"description": "a bad limit"}})
    async def events(request: Request, _caller=Depends(requires(api, "admin"))) -> JSONResponse:
        """The audit trail, newest first (``limit``: 1-1000, default 100); each change made
        through the service says who made it in ``detail.by``."""
        limit = request.query_params.get("limit", "100")
        if set(request.query_params.keys()) - {"limit"} or not (limit.isascii() and limit.isdigit()
                                                                 and 1 <= int(limit) <= MAX_EVENTS):
            raise InvalidRequest(f"the only parameter is limit, a number from 1 to {MAX_EVENTS}")
        rows = await run_in_threadpool(api.service.inventory.events, int(limit))
        return JSONResponse([{**row, "at": _iso(row["at"])} for row in rows])


def crl_status(service) -> list[dict]:
    from mtlskit.publish import crls

    now = service.clock.now()
    published = crls.published(service)
    due = set(crls.due_for_refresh(service))
    rows = []
    for name in crls.chain_names(service):
        state = published.get(name)
        next_update = state["next_update"] if state else None
        rows.append({"ca": name, "crl_number": state["crl_number"] if state else None,
                     "this_update": _iso(state["this_update"]) if state else None,
                     "next_update": _iso(next_update), "entries": state["entries"] if state else None,
                     "due": name in due, "stale": next_update is None or next_update <= now,
                     "url": f"/crl/{name}.crl"})
    return rows


def deployment_list(service) -> list[dict]:
    from mtlskit.deploy.records import list_deployments

    return [{"server": d.server, "name": d.name, "directory": str(d.directory), "revocation": d.revocation,
             "reload_command": d.reload_command, "options": d.options} for d in list_deployments(service.inventory)]


def _iso(value):
    return value.isoformat() if value is not None else None
