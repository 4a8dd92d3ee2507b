"""The `mtlskit deploy` workflow: server credentials, CA and CRL bundles, files, record, check.

    validate options -> CA certificates -> current CRLs (crl mode; a CA without one, or
    with an expired one, gets it published first) -> server certificate (reuse a valid
    one whose key we hold, else issue) -> render -> install atomically -> record in
    `deployments` + audit -> optional config test -> reload the running server when a
    file changed
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import grp
import ipaddress
import pwd
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.deploy import authz
from mtlskit.deploy.bundle import check_crl_coverage, deployment_files, pem_bundle, verify_depth
from mtlskit.deploy.check import CheckResult, run_check
from mtlskit.deploy.install import FileSpec, install, make_directory, remove_created
from mtlskit.deploy.options import SERVERS, DeployOptions, Endpoint, validate
from mtlskit.deploy.records import list_deployments, record_deployment
from mtlskit.deploy.refresh import RefreshResult, apply_change
from mtlskit.deploy.render import MAIN_FILE, SITE_FILE, Layout, default_reload, slug
from mtlskit.deploy.stapling import fetch_staple, staple_path
from mtlskit.errors import BadInput, CheckFailed, UsageError
from mtlskit.fileio import read_input
from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest, SanRequest
from mtlskit.issue.profiles import get_profile
from mtlskit.issue.subject import defaults_of
from mtlskit.issue.workflow import issue_batch
from mtlskit.pki import names
from mtlskit.pki.keys import KeyType
from mtlskit.publish import crls as crl_publishing
from mtlskit.store.inventory import LIVE, CertificateRecord, Status
from mtlskit.store.publication import stored_crls

SERVER_PROFILES = ("server", "peer")


@dataclasses.dataclass(frozen=True)
class DeployResult:
    options: DeployOptions
    certificate: CertificateRecord
    issued: bool                      # True when deploy issued a new server certificate
    files: list[Path]
    reload_command: str | None
    check: CheckResult | None
    reload: RefreshResult | None = None          # what re-running deploy did to the running server
    crl_next_update: dt.datetime | None = None   # the first of the deployed CRLs to go stale
    published_crls: tuple[str, ...] = ()         # CAs whose CRL deploy had to publish first
    stapling: str | None = None                  # what became of OCSP stapling, one line
    renewed: str | None = None                   # why deploy renewed the server certificate, one line


@dataclasses.dataclass(frozen=True)
class _Credentials:
    chain_pem: bytes
    key_pem: bytes
    record: CertificateRecord
    issued: bool
    renewed: str | None = None


def deploy(service, options: DeployOptions, passphrase_source, cert_dir: Path | None = None,
           check: bool = False, sans: SanRequest = SanRequest()) -> DeployResult:
    """Write a deployment into ``options.directory`` and record it.

    ``sans`` are the subjectAltNames of the server certificate when one must be issued
    (a NAME that looks like a host name is a DNS SAN by itself).

    Raises:
        UsageError: options the server cannot honour.
        BadInput: no CRL for a CA (crl mode), unreadable --cert-dir, unwritable directory.
        CheckFailed: ``check`` and the server's config test refused the result (the files
            are installed and recorded; the server's message is in the error).
    """
    options = validate(authz.prepared(_with_defaults(service, options), service.settings.public_url))
    refuse_other_server(service, options)
    typed_sans = _typed_sans(sans)
    cas = ca_list(service)
    published = _publish_missing_crls(service, passphrase_source) if options.revocation == "crl" else []
    crls = current_crls(service, cas) if options.revocation == "crl" else []
    created = make_directory(options.directory)        # the first write: refusals leave nothing
    try:
        creds = _server_credentials(service, options, passphrase_source, cert_dir, sans)
        if not creds.issued:
            _check_sans_present(creds, typed_sans)
    except BaseException:
        remove_created(created)
        raise
    staple_files, stapling = _haproxy_staple(service, options, creds.chain_pem)
    specs = deployment_files(options, creds.chain_pem, creds.key_pem, cas, crls)
    specs[2:2] = staple_files + authz.files(options)   # next to the certificate, before any configuration
    changed = _changed_files(options.directory, specs)
    files = install(options.directory, specs)
    reload_command = options.reload_command or default_reload(options)
    record = record_deployment(service.inventory, options, reload_command, service.clock.now())
    result = run_check(options, verify_depth(cas)) if check else None
    if result is not None and result.ran and result.unreadable:
        raise CheckFailed(result.unreadable, hint="make the path readable by that user (chmod o+x on its "
                                                  "parent directories), or deploy into another --dir")
    if result is not None and result.ran and not result.ok:
        raise CheckFailed(f"{' '.join(result.command[:2])} refused the configuration: {result.summary}",
                          hint=f"the files are in {options.directory}; fix the flags and deploy again")
    reload = apply_change(record, changed, lambda: result or run_check(options, verify_depth(cas)))
    next_update = min((crl.next_update_utc for crl in crls if crl.next_update_utc), default=None)
    return DeployResult(options, creds.record, creds.issued, files, reload_command, result, reload=reload,
                        crl_next_update=next_update, published_crls=tuple(published), stapling=stapling,
                        renewed=creds.renewed)


def _haproxy_staple(service, options: DeployOptions, chain_pem: bytes) -> tuple[list[FileSpec], str | None]:
    """HAProxy staples ``server.pem.ocsp`` only: fetch it from mtlskit's responder now.

    A deploy while the responder is down still succeeds (the server then staples nothing
    until a later deploy or ``stapling.refresh_staple`` fetches it); a response left from an earlier certificate is
    removed, since HAProxy refuses to start with an answer about another certificate.
    """
    if not (options.staple and options.server == "haproxy"):
        return [], "the server fetches its OCSP response itself" if options.staple else None
    target = staple_path(Layout(options.directory, options.server).server_cert)
    try:
        staple = fetch_staple(chain_pem, options.ocsp_url, service.clock.now())
    except BadInput as exc:
        target.unlink(missing_ok=True)
        return [], f"not stapled yet: {exc.message} (deploy again once the responder answers)"
    return [FileSpec(target.name, staple.der)], f"stapled the OCSP response in {target}"


def refuse_other_server(service, options: DeployOptions) -> None:
    """One directory holds one server's deployment: refuse to write a second server type over it.

    Replacing it would leave the first server running on files that are no longer its own
    (and its reload hook recorded against them); the user picks another --dir instead.

    Raises:
        UsageError: the directory is recorded for, or holds the configuration of, another server.
    """
    for record in list_deployments(service.inventory):
        if record.directory == options.directory and record.server != options.server:
            raise UsageError(f"{options.directory} already holds the {record.server} deployment of "
                             f"{record.name!r}; one directory holds one server",
                             hint=f"deploy {options.server} into another --dir")
        if record.server == options.server and record.name != options.name and slug(record.name) == slug(options.name):
            # The slug names log files, log formats and upstream blocks of the server: two
            # deployments sharing one would write into each other's logs.
            raise UsageError(f"--name {options.name!r} and the deployed {record.name!r} ({record.directory}) "
                             f"give the same configuration identifier {slug(options.name)!r}",
                             hint="pick a NAME that differs in more than punctuation or case")
    for server in SERVERS:
        names = {SITE_FILE[server], MAIN_FILE[server]}
        found = sorted(name for name in names if (options.directory / name).exists())
        if server != options.server and found:
            raise UsageError(f"{options.directory} already holds a {server} configuration ({found[0]}); "
                             f"one directory holds one server", hint=f"deploy {options.server} into another --dir")


def _publish_missing_crls(service, passphrase_source) -> list[str]:
    """Publish the CRL of each CA that has none yet, or only an expired one: a fresh CA
    has none, and a bundle without one makes every server refuse every client."""
    missing = crl_publishing.due_for_refresh(service, margin=dt.timedelta(0))
    if missing:
        crl_publishing.publish(service, service.authority(passphrase_source), missing)
    return missing


def _changed_files(directory: Path, specs: list[FileSpec]) -> set[str]:
    """The names of ``specs`` whose content differs from what ``directory`` holds now."""
    changed = set()
    for spec in specs:
        path = directory / spec.name
        try:
            same = path.is_file() and path.read_bytes() == spec.data
        except OSError:
            same = False
        if not same:
            changed.add(spec.name)
    return changed


def _with_defaults(service, options: DeployOptions) -> DeployOptions:
    directory = options.directory.expanduser().absolute()
    run_user, run_group = options.run_user, options.run_group
    if options.server == "apache" and options.standalone and run_user is None:
        run_user, run_group = _first_user("www-data", "nobody")
    ocsp_url = options.ocsp_url
    if ocsp_url is None and service.settings.public_url:
        ocsp_url = service.settings.public_url.rstrip("/") + "/ocsp"   # `mtlskit serve` answers there
    # Staple when the CA publishes OCSP; nginx's stream module has no stapling.
    staple = options.staple or (bool(service.settings.public_url) and not (options.tcp and options.server == "nginx"))
    return dataclasses.replace(options, directory=directory, run_user=run_user, run_group=run_group,
                               ocsp_url=ocsp_url, staple=staple)


def _first_user(*names: str) -> tuple[str, str]:
    """The first existing user of ``names`` and the name of its primary group."""
    for name in names:
        try:
            entry = pwd.getpwnam(name)
            return name, grp.getgrgid(entry.pw_gid).gr_name
        except KeyError:
            continue
    raise UsageError("no unprivileged user (www-data, nobody) for Apache to serve as")


def ca_list(service) -> list[x509.Certificate]:
    """The CA certificates, root first, as client-CA bundle and CRL-coverage reference."""
    return list(service.ca_certificates().values())


def current_crls(service, cas: list[x509.Certificate]) -> list[x509.CertificateRevocationList]:
    """The last CRL published for each CA (``crl_state``), checked to cover every CA.

    Raises:
        BadInput: a CA has no published CRL yet.
    """
    crls = [x509.load_der_x509_crl(der) for der in stored_crls(service.inventory).values()]
    try:
        check_crl_coverage(cas, crls)
    except BadInput as exc:
        raise BadInput(exc.message, hint="run `mtlskit crl` first, or deploy with --revocation none") from None
    return [crl for ca in cas for crl in crls if crl.issuer == ca.subject]


def current_crl_bundle(service) -> bytes:
    """The PEM bundle ``refresh_deployments`` expects: the current CRL of every CA."""
    return pem_bundle(current_crls(service, ca_list(service)))


def _server_credentials(service, options: DeployOptions, passphrase_source,
                        cert_dir: Path | None, sans: SanRequest) -> _Credentials:
    now = service.clock.now()
    valid = [r for r in service.inventory.by_name(options.name)
             if r.profile in SERVER_PROFILES and r.status_at(now) is Status.VALID]
    for chain_path, key_path in _credential_sources(service, options, cert_dir, valid):
        found = _load_matching(chain_path, key_path, valid)
        if found:
            return renew_if_due(service, found, passphrase_source)
    if cert_dir is not None:
        raise BadInput(f"--cert-dir {cert_dir} holds no key.pem + fullchain.pem (or server.pem.key + server.pem) "
                       f"of a valid server certificate named {options.name!r}")
    if valid:
        raise UsageError(
            f"the inventory has a valid server certificate {options.name!r} (serial {valid[0].serial_hex}) "
            f"but its key is not in {options.directory}",
            hint="give --cert-dir with the directory `mtlskit issue server` wrote, or revoke it")
    return _issue(service, options, passphrase_source, sans)


def _credential_sources(service, options: DeployOptions, cert_dir: Path | None,
                        valid: list[CertificateRecord] = ()) -> list[tuple[Path, Path]]:
    """Where a key of a valid server certificate may be: --cert-dir (as `mtlskit issue` or
    `mtlskit deploy` wrote it); else the directories its newest certificates were written
    to (a NAME means its newest certificate: after `renew`, the successor), this
    directory, then other deployments of the same name."""
    def both_layouts(directory: Path) -> list[tuple[Path, Path]]:
        deployed = Layout(directory, options.server)
        return [(directory / "fullchain.pem", directory / "key.pem"),
                (deployed.server_cert, deployed.server_key)]

    if cert_dir:                      # given: used, or refused; never silently passed over
        return both_layouts(cert_dir)
    current = sorted((r for r in valid if r.superseded_by is None and r.directory),
                     key=lambda r: r.not_before, reverse=True)
    sources = [(Path(r.directory) / "fullchain.pem", Path(r.directory) / "key.pem") for r in current]
    sources += both_layouts(options.directory)
    for other in list_deployments(service.inventory):
        if other.name == options.name and other.directory != options.directory:
            sources += both_layouts(other.directory)
    return sources


def _load_matching(chain_path: Path, key_path: Path, valid: list[CertificateRecord]) -> _Credentials | None:
    if not (chain_path.is_file() and key_path.is_file()):
        return None
    try:
        chain_pem, key_pem = read_input(chain_path), read_input(key_path)  # bounded, regular
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BadInput(f"cannot read the server certificate in {chain_path.parent}: {exc}") from None
    fingerprint = leaf.fingerprint(hashes.SHA256()).hex()
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise BadInput(f"{key_path} is not the key of {chain_path}")
    for record in valid:
        if record.fingerprint_sha256.lower() == fingerprint:
            return _Credentials(chain_pem, key_pem, record, issued=False)
    return None


def with_listen_ip(sans: SanRequest, listen: Endpoint) -> SanRequest:
    """``sans`` plus the ``--listen`` address as an IP SAN when it is one specific IP.

    Clients that connect by that address (``https://10.0.0.5:8443``) verify it against the
    certificate's IP SANs (RFC 6125 section 1.7.2 / RFC 9525); a wildcard listen names no address.
    """
    if listen.host == "*":
        return sans
    try:
        address = ipaddress.ip_address(listen.host)
    except ValueError:
        return sans
    if address.is_unspecified or any(_same_ip(address, ip) for ip in sans.ip):
        return sans
    return dataclasses.replace(sans, ip=(*sans.ip, str(address)))


def _same_ip(address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text.strip()) == address
    except ValueError:        # refused with its own message when the certificate is built
        return False


def _typed_sans(sans: SanRequest) -> list[x509.GeneralName]:
    """--dns and --ip as names, refused here (before anything is written) if malformed."""
    return [names.dns_name(d) for d in sans.dns] + [names.ip_address(i) for i in sans.ip]


def _check_sans_present(creds: _Credentials, typed: list[x509.GeneralName]) -> None:
    """--dns/--ip only shape a certificate deploy issues: when it reuses one, each must
    already be in it, or the user would believe in a name the server does not present."""
    leaf = x509.load_pem_x509_certificates(creds.chain_pem)[0]
    present = set(names.sans_of(leaf))
    missing = [names.general_name_text(n) for n in typed if n not in present]
    if missing:
        raise UsageError(
            f"{', '.join(missing)} not in the server certificate {creds.record.name} (serial "
            f"{creds.record.serial_hex}) that deploy reuses; --dns/--ip only apply to a certificate it issues",
            hint="drop --dns/--ip, or revoke that certificate so deploy issues a new one with them")


def _issue(service, options: DeployOptions, passphrase_source, sans: SanRequest) -> _Credentials:
    """Issue the server certificate through the core workflow, in a private scratch directory."""
    authority = service.authority(passphrase_source)
    request = IssueRequest(get_profile("server"), options.name, with_listen_ip(sans, options.listen),
                           defaults_of(service.settings))   # [subject] of mtlskit.toml
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".mtlskit-issue-", dir=options.directory))
    except OSError as exc:
        raise BadInput(f"cannot write into --dir {options.directory}: {exc.strerror or exc}") from None
    try:
        out = scratch / "server"
        [record] = issue_batch(service, authority, [request],
                               [out], KeyType.parse("ec-p256"), BundleOptions(), record_directories=False)
        return _Credentials((out / "fullchain.pem").read_bytes(), (out / "key.pem").read_bytes(),
                            record, issued=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unplaced_successor(service, record: CertificateRecord, now) -> CertificateRecord | None:
    """The live successor of ``record`` that `deploy` signed for itself (no directory) and
    that is not superseded in turn, or None."""
    for successor in service.inventory.by_serial(record.superseded_by):
        if (successor.name == record.name and successor.superseded_by is None and not successor.directory
                and successor.status_at(now) in LIVE):
            return successor
    return None


def renew_if_due(service, creds: _Credentials, passphrase_source) -> _Credentials:
    """The credentials found, or their successor when less than a third of the lifetime
    is left: renewed where `issue` wrote them (which installs nothing: deploy does), or
    in memory for a certificate deploy issued itself (recorded before its key is written)."""
    from mtlskit.deploy.renewal import due_for_renewal

    record, now = creds.record, service.clock.now()
    if not due_for_renewal(record.not_before, record.not_after, now):
        return creds
    why = (f"renewed the server certificate {record.name}: {(record.not_after - now).days} of its "
           f"{(record.not_after - record.not_before).days} days left (less than a third)")
    if record.superseded_by is not None:
        # Found installed, yet renewed: a renewal died between recording its successor and
        # installing it, so the successor's key is lost. Renew the successor in its place.
        lost = _unplaced_successor(service, record, now)
        if lost is None:
            return creds
        why += f"; its successor {lost.serial_hex} was never installed (its key is lost) and is superseded"
        record = lost
    authority = service.authority(passphrase_source)
    if record.directory and Path(record.directory).is_dir():
        from mtlskit.lifecycle.renew import renew_certificates

        [renewal] = renew_certificates(service, authority, [record], deploy=False)
        directory = Path(renewal.directory)
        return _Credentials(read_input(directory / "fullchain.pem"), read_input(directory / "key.pem"),
                            renewal.new, issued=False, renewed=why)
    from mtlskit.lifecycle.renew import build_successor, record_successors
    from mtlskit.pki.keys import generate_private_key, private_key_pem

    key = generate_private_key(KeyType(record.key_type))
    new = build_successor(service, authority, record, key.public_key(), at=now)
    record_successors(service, [(record, new)], now)
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in authority.chain)
    return _Credentials(new.pem.encode("ascii") + chain, private_key_pem(key), new, issued=False, renewed=why)
