"""The routes of the web UI (``/ui/``): pages rendered on the server, forms without script.

An adapter: reads go through :mod:`mtlskit.store.browse`, writes through the workflows the
CLI uses (:func:`mtlskit.issue.identity.issue_identity`, :func:`mtlskit.revoke.revoker.revoke`)
inside :func:`mtlskit.audit_actor.acting_as` (audited ``"by": "session:<name>"``). Every
response carries anti-framing, CSP and ``Cache-Control: no-store`` (:func:`secure_headers`);
every POST needs the session's CSRF token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from mtlskit.api.auth import allows, verified_principal
from mtlskit.errors import MtlskitError
from mtlskit.ui import pages
from mtlskit.ui.session import COOKIE, LoginLinks, Session, Sessions

PREFIX = "/ui"
MAX_FORM_OCTETS = 16 * 1024
STATIC = Path(__file__).parent / "static"
_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin")]


@dataclasses.dataclass
class UiContext:
    """What the UI needs, built by the composition root (api/wiring.py)."""

    service: object
    authority: object
    source: object          # this worker's OcspSource (revocations drop its cache)
    sessions: Sessions
    links: LoginLinks
    user: str               # who a log-in link logs in as (the user that started serve)


class _Refusal(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def is_ui_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def create_ui(ui: UiContext):
    """The ASGI app of ``/ui``: FastAPI routes behind :func:`secure_headers`."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    templates = Environment(loader=PackageLoader("mtlskit.ui", "templates"),
                            autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)

    def now() -> float:
        return ui.service.clock.now().timestamp()

    def viewer(request: Request) -> tuple[Session | None, str | None]:
        """The request's session, or one opened for its client certificate (with the cookie to set)."""
        session = ui.sessions.read(request.cookies.get(COOKIE), now())
        if session is not None and session.via != "certificate":
            return session, None
        certificate = _client_certificate(request)
        principal = None if certificate is None else verified_principal(
            certificate, ui.service.settings, ui.service.inventory, ui.service.clock.now())
        fingerprint = None if certificate is None else \
            hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
        if session is not None:
            # a certificate's session lasts while the certificate that opened it is presented
            # and live: revoked (or no longer in [roles]), its next request ends the session
            alive = (principal is not None and fingerprint == session.fingerprint
                     and (principal.name, principal.role) == (session.name, session.role))
            if not alive:
                ui.sessions.end(session)
            return (session if alive else None), None
        if principal is None:
            return None, None
        cookie, session = ui.sessions.open(principal.name, principal.role, "certificate", now(), fingerprint)
        return session, cookie

    def render(request: Request, template: str, session: Session | None, code: int = 200,
               cookie: str | None = None, **values) -> HTMLResponse:
        html = templates.get_template(template).render(
            session=session, csrf=ui.sessions.csrf_token(session) if session else "", prefix=PREFIX, **values)
        response = HTMLResponse(html, status_code=code)
        if cookie is not None:
            _set_cookie(request, response, cookie, ui.sessions.lifetime)
        return response

    def refusal(request: Request, exc: _Refusal, session: Session | None = None) -> HTMLResponse:
        return render(request, "refused.html", session, exc.status, title=exc.title, message=exc.message)

    async def shown_or_404(issuer: str, serial: str) -> dict:
        """The detail of one certificate, or a 404 refusal when the inventory lacks it."""
        shown = await run_in_threadpool(pages.certificate_detail, ui.service, issuer, serial)
        if shown is None:
            raise _Refusal(404, "No such certificate", f"No certificate {serial} of {issuer} in the inventory.")
        return shown

    async def guarded(request: Request, role: str, handler, post: bool = False):
        session, cookie = viewer(request)
        try:
            if session is None:
                raise _Refusal(401, "Not logged in", "Open the one-time log-in link that `mtlskit serve --ui` "
                                                     "printed, or present a client certificate with a role.")
            if not allows(session.principal, role):
                raise _Refusal(403, "Not allowed", f"This needs the {role} role; {session.name} has {session.role}.")
            form = await _form(request) if post else {}
            if post and not ui.sessions.csrf_ok(session, form.get("csrf")):
                raise _Refusal(403, "Form refused", "The form's CSRF token is missing or wrong: reload the "
                                                    "page and send it again.")
            response = await handler(session, form) if post else await handler(session)
        except _Refusal as exc:
            response = refusal(request, exc, session)
        if cookie is not None:
            _set_cookie(request, response, cookie, ui.sessions.lifetime)
        return response

    @app.get(PREFIX + "/login")
    async def login(request: Request, token: str = "") -> Response:
        if not ui.links.consume(token, now()):
            return refusal(request, _Refusal(403, "Log-in link refused",
                                             "This log-in link is unknown, expired or already used. "
                                             "Start `mtlskit serve --ui` again for a new one."))
        cookie, _ = ui.sessions.open(ui.user, "admin", "link", now())
        # never where the request asks to go: a fixed page, so no open redirect
        response = RedirectResponse(PREFIX + "/certificates", status_code=303)
        _set_cookie(request, response, cookie, ui.sessions.lifetime)
        return response

    @app.get(PREFIX)
    @app.get(PREFIX + "/")
    async def home() -> Response:
        return RedirectResponse(PREFIX + "/certificates", status_code=303)

    @app.get(PREFIX + "/static/style.css")
    async def style() -> Response:
        return FileResponse(STATIC / "style.css", media_type="text/css")

    @app.post(PREFIX + "/logout")
    async def logout(request: Request) -> Response:
        async def handler(session, _form):
            ui.sessions.end(session)
            response = render(request, "refused.html", None, 200, title="Logged out",
                              message="The session is closed. Log in again with a new link.")
            response.delete_cookie(COOKIE, path=PREFIX)
            return response
        return await guarded(request, "read", handler, post=True)

    @app.get(PREFIX + "/certificates")
    async def certificates(request: Request) -> Response:
        async def handler(session):
            listing = await run_in_threadpool(pages.certificate_list, ui.service, request.query_params)
            return render(request, "certificates.html", session, **listing)
        return await guarded(request, "read", handler)

    @app.get(PREFIX + "/certificates/{issuer}/{serial}")
    async def detail(request: Request, issuer: str, serial: str) -> Response:
        async def handler(session):
            shown = await shown_or_404(issuer, serial)
            return render(request, "detail.html", session, done=request.query_params.get("done", ""), **shown)
        return await guarded(request, "read", handler)

    @app.get(PREFIX + "/certificates/{issuer}/{serial}/revoke")
    async def revoke_form(request: Request, issuer: str, serial: str) -> Response:
        async def handler(session):
            shown = await shown_or_404(issuer, serial)
            return render(request, "revoke.html", session, step="choose", reasons=pages.REASONS, **shown)
        return await guarded(request, "revoke", handler)

    @app.post(PREFIX + "/certificates/{issuer}/{serial}/revoke")
    async def revoke_post(request: Request, issuer: str, serial: str) -> Response:
        async def handler(session, form):
            shown = await shown_or_404(issuer, serial)
            reason = form.get("reason", "")
            if reason not in pages.REASONS:
                raise _Refusal(422, "Unknown reason", "Pick one of the listed reasons.")
            if form.get("confirm") != "yes":   # the confirmation step
                return render(request, "revoke.html", session, step="confirm", reason=reason, **shown)
            try:
                await run_in_threadpool(pages.revoke_one, ui, session, shown["record"], reason)
            except MtlskitError as exc:
                raise _Refusal(409, "Not revoked", exc.message) from None
            target = f"{PREFIX}/certificates/{issuer}/{serial}?" + urlencode({"done": "revoked"})
            return RedirectResponse(target, status_code=303)
        return await guarded(request, "revoke", handler, post=True)

    @app.get(PREFIX + "/issue")
    async def issue_form(request: Request) -> Response:
        async def handler(session):
            return render(request, "issue.html", session, form={}, error=None, **pages.ISSUE_CHOICES)
        return await guarded(request, "issue", handler)

    @app.post(PREFIX + "/issue")
    async def issue_post(request: Request) -> Response:
        async def handler(session, form):
            try:
                download = await run_in_threadpool(pages.issue_download, ui, session, form)
            except MtlskitError as exc:
                status = 409 if exc.code == "already-exists" else 422
                return render(request, "issue.html", session, status, form=_echo(form), error=exc.message,
                              **pages.ISSUE_CHOICES)
            return Response(download.data, media_type=download.media_type, headers={
                "Content-Disposition": f'attachment; filename="{download.filename}"',
                "Cache-Control": "no-store", "Pragma": "no-cache"})
        return await guarded(request, "issue", handler, post=True)

    @app.get(PREFIX + "/timeline")
    async def timeline(request: Request) -> Response:
        async def handler(session):
            chart = await run_in_threadpool(pages.timeline, ui.service)
            return render(request, "timeline.html", session, **chart)
        return await guarded(request, "read", handler)

    @app.get(PREFIX + "/status")
    async def status(request: Request) -> Response:
        async def handler(session):
            shown = await run_in_threadpool(pages.revocation_status, ui.service, ui.source)
            return render(request, "status.html", session, **shown)
        return await guarded(request, "read", handler)

    @app.get(PREFIX + "/deployments")
    async def deployments(request: Request) -> Response:
        async def handler(session):
            shown = await run_in_threadpool(pages.deployment_list, ui.service)
            return render(request, "deployments.html", session, **shown)
        return await guarded(request, "read", handler)

    return secure_headers(app)


def secure_headers(app):
    """Wrap an ASGI app: every response gets SECURITY_HEADERS, and ``Cache-Control:
    no-store`` unless it set its own (pages show the inventory; downloads carry keys)."""

    async def wrapped(scope, receive, send):
        async def send_secured(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)
        await app(scope, receive, send_secured)

    return wrapped


def _set_cookie(request: Request, response: Response, value: str, max_age: int) -> None:
    response.set_cookie(COOKIE, value, max_age=max_age, path=PREFIX, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and media_type != "application/x-www-form-urlencoded":
        raise _Refusal(415, "Form refused", "Forms are sent as application/x-www-form-urlencoded.")
    if len(body) > MAX_FORM_OCTETS:
        raise _Refusal(413, "Form refused", f"Forms are limited to {MAX_FORM_OCTETS} bytes.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise _Refusal(400, "Form refused", "The form is not valid UTF-8 form data.") from None
    return {key: values[0] for key, values in fields.items()}


def _echo(form: dict[str, str]) -> dict[str, str]:
    """The fields to show again after an error: never the passwords or the CSRF token."""
    return {k: v for k, v in form.items() if k not in ("password", "password2", "csrf")}


def _client_certificate(request: Request) -> x509.Certificate | None:
    tls = (request.scope.get("extensions") or {}).get("tls")
    chain = (tls or {}).get("client_cert_chain") or []
    if not chain:
        return None
    return x509.load_der_x509_certificate(ssl.PEM_cert_to_DER_cert(chain[0]))
