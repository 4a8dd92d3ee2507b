"""Builds what `mtlskit serve` runs from a Service: responders, OCSP source, HTTP app.

The composition for the HTTP side; the CLI calls it, tests call it.
"""

from __future__ import annotations

from mtlskit.api.app import ServiceView, create_app
from mtlskit.api.rest import RestApi
from mtlskit.api.workers import Worker
from mtlskit.deploy.refresh import refresh_staples
from mtlskit.publish.ocsp_source import OcspSource, ServedCa
from mtlskit.publish.ocsp_status import InventoryStatusLookup
from mtlskit.publish.refresher import CrlRefresher
from mtlskit.publish.responder import ResponderKeeper
from mtlskit.store.changes import change_watch


def responder_dir(service):
    return service.settings.home / "ocsp"


def tls_dir(service):
    return service.settings.home / "tls"


def build_worker(service, authority, api_token: str | None = None, tls_names=None, metrics=None,
                 ui=None) -> Worker:
    """The app, OCSP source and periodic upkeep of one serving process.

    Args:
        service: an open Service (its own inventory connections: call this after fork).
        authority: the loaded Authority; its signers certify the OCSP responders (and,
            with the REST API, sign the CRLs of revocations made through it).
        api_token: the bearer token of the REST API (``serve --api``); None leaves
            the API off (its routes answer 404).
        tls_names: the names of the TLS server certificate (``serve --tls-port``); None
            serves no TLS and no enrollment.
        metrics: the :class:`mtlskit.metrics.worker.MetricsOptions` of /metrics; None: no metrics.
        ui: the UiSetup of ``serve --ui`` (:mod:`mtlskit.ui.setup`); None leaves /ui/ off.
    """
    # a CA whose key is offline (the root, kept off the machine) certifies no responder:
    # OCSP answers for the CAs that issue leaves, which need only their own keys
    signers = {name: signer for name, signer in authority.signers.items() if signer.key_present}
    keeper = ResponderKeeper(responder_dir(service), signers, service.inventory, service.clock)
    responders = keeper.current()
    cas = [ServedCa(name, signer.certificate, responders[name]) for name, signer in signers.items()]
    refresh = service.settings.ocsp_refresh_seconds
    watch = change_watch(service.inventory.db, interval=refresh)
    if service.inventory.db.dialect == "sqlite":
        lookup = InventoryStatusLookup(service.inventory, watch)
    else:   # replicas: the change counter marks every change, never event ids
        from mtlskit.store.counter import CounterStatusLookup

        lookup = CounterStatusLookup(InventoryStatusLookup(service.inventory), watch)
    source = OcspSource(cas, lookup, service.clock, refresh_seconds=refresh)
    api = RestApi(service, authority, api_token) if api_token is not None else None
    view = ServiceView(source, service.ca_certificates(), crl_provider(service), service.clock, api)
    if metrics is not None:
        from mtlskit.metrics.worker import WorkerMetrics

        view.metrics = WorkerMetrics(metrics, service.inventory.db, service.clock, source)
    view.authz = build_authorizer(service)
    tls = _TlsUpkeep(service, authority, tls_names) if tls_names is not None else None
    if tls is not None:
        from mtlskit.api.enroll_routes import EnrollApi

        view.enroll = EnrollApi(service, authority)

    ui_context = ui.context(service, authority, source) if ui is not None else None
    if ui_context is not None:
        from mtlskit.ui.app import create_ui

        view.ui = create_ui(ui_context)
    refresher = CrlRefresher(service, authority, refresh_staples=refresh_staples)

    def pick_up_rotation() -> None:
        """A CA added by `rotate intermediate` since start: answer OCSP and serve its CRL
        and certificate; the REST API and the CRL refresher sign with the new authority."""
        grown = service.ca_files.refreshed(refresher.authority)
        if grown is None:
            return
        new = {name: signer for name, signer in grown.signers.items()
               if name not in source.cas and signer.key_present}
        keeper.add_signers(new)
        responders = keeper.current()
        for name, signer in new.items():
            source.add_ca(ServedCa(name, signer.certificate, responders[name]))
        view.ca_certificates.update(service.ca_certificates())
        refresher.authority = grown
        if api is not None:
            api.authority = grown
        if ui_context is not None:
            ui_context.authority = grown

    def upkeep() -> None:
        pick_up_rotation()
        # Renew responders at 2/3 of their life, or pick up the one another worker renewed.
        for name, responder in keeper.current().items():
            if responder.certificate != source.cas[name].responder.certificate:
                source.replace_responder(name, responder)
        refresher.tick()  # re-sign CRLs before they go stale (in the background)
        if tls is not None:
            tls.tick()

    return Worker(create_app(view), source, service.clock, upkeep, tls.context if tls else None)


def build_authorizer(service, watch=None):
    """/authz for `deploy nginx --policy`: deployments and identities from the inventory,
    dropped when ``watch`` (a change watch of its own: a watch has one reader) moves."""
    from mtlskit.authz.decider import Authorizer
    from mtlskit.deploy.authz import authz_deployments

    refresh = service.settings.ocsp_refresh_seconds
    if watch is None:
        watch = change_watch(service.inventory.db, interval=refresh)
    return Authorizer(service.inventory, service.clock, watch, lambda: authz_deployments(service.inventory),
                      refresh_seconds=refresh)


class _TlsUpkeep:
    """The TLS server certificate and the context serving it: renewed (or picked up from
    another worker) by the periodic upkeep; new connections get the new certificate."""

    def __init__(self, service, authority, tls_names) -> None:
        from mtlskit.api.tls import TlsKeeper, server_context
        from cryptography.hazmat.primitives import serialization

        self.keeper = TlsKeeper(tls_dir(service), authority, service.inventory, service.clock, tls_names)
        self.certificate, _ = self.keeper.current()
        trusted = b"".join(c.public_bytes(serialization.Encoding.PEM)
                           for c in [authority.root.certificate, *authority.chain])
        self.context = server_context(self.keeper.files, trusted)

    def tick(self) -> None:
        certificate, _ = self.keeper.current()
        if certificate != self.certificate:
            self.context.load_cert_chain(self.keeper.files.certificate_path, self.keeper.files.key_path)
            self.certificate = certificate


def crl_provider(service):
    """CA name -> current CRL (DER), as the last publication stored it."""
    from mtlskit.publish.crls import current_crl_der

    return lambda ca_name: current_crl_der(service, ca_name)
