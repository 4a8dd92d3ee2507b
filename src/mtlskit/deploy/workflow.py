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
import pwd
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.deploy.bundle import check_crl_coverage, deployment_files, pem_bundle, verify_depth
from mtlskit.deploy.check import CheckResult, run_check
from mtlskit.deploy.install import FileSpec, install
from mtlskit.deploy.options import DeployOptions, validate
from mtlskit.deploy.records import list_deployments, record_deployment
from mtlskit.deploy.refresh import RefreshResult, apply_change
from mtlskit.deploy.render import Layout, default_reload
from mtlskit.errors import BadInput, CheckFailed, UsageError
from mtlskit.issue.bundle import BundleOptions
from mtlskit.issue.issuer import IssueRequest, SanRequest
from mtlskit.issue.profiles import get_profile
from mtlskit.issue.workflow import issue_batch
from mtlskit.pki.keys import KeyType
from mtlskit.publish import crls as crl_publishing
from mtlskit.store.inventory import CertificateRecord, Status
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


@dataclasses.dataclass(frozen=True)
class _Credentials:
    chain_pem: bytes
    key_pem: bytes
    record: CertificateRecord
    issued: bool


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
    options = validate(_with_defaults(service, options))
    cas = ca_list(service)
    published = _publish_missing_crls(service, passphrase_source) if options.revocation == "crl" else []
    crls = current_crls(service, cas) if options.revocation == "crl" else []
    options.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    creds = _server_credentials(service, options, passphrase_source, cert_dir, sans)
    specs = deployment_files(options, creds.chain_pem, creds.key_pem, cas, crls)
    changed = _changed_files(options.directory, specs)
    files = install(options.directory, specs)
    reload_command = options.reload_command or default_reload(options)
    record = record_deployment(service.inventory, options, reload_command, service.clock.now())
    result = run_check(options, verify_depth(cas)) if check else None
    if result is not None and result.ran and not result.ok:
        raise CheckFailed(f"{' '.join(result.command[:2])} refused the configuration: {result.summary}",
                          hint=f"the files are in {options.directory}; fix the flags and deploy again")
    reload = apply_change(record, changed, lambda: result or run_check(options, verify_depth(cas)))
    next_update = min((crl.next_update_utc for crl in crls if crl.next_update_utc), default=None)
    return DeployResult(options, creds.record, creds.issued, files, reload_command, result, reload,
                        next_update, tuple(published))


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
    return dataclasses.replace(options, directory=directory, run_user=run_user, run_group=run_group,
                               ocsp_url=ocsp_url)


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
    for chain_path, key_path in _credential_sources(service, options, cert_dir):
        found = _load_matching(chain_path, key_path, valid)
        if found:
            return found
    if cert_dir is not None:
        raise BadInput(f"{cert_dir} holds no key.pem + fullchain.pem (or server.pem.key + server.pem) "
                       f"of a valid server certificate named {options.name!r}")
    if valid:
        raise UsageError(
            f"the inventory has a valid server certificate {options.name!r} (serial {valid[0].serial_hex}) "
            f"but its key is not in {options.directory}",
            hint="give --cert-dir with the directory `mtlskit issue server` wrote, or revoke it")
    return _issue(service, options, passphrase_source, sans)


def _credential_sources(service, options: DeployOptions, cert_dir: Path | None) -> list[tuple[Path, Path]]:
    """Where a key of a valid server certificate may be: --cert-dir (as `mtlskit issue` or
    `mtlskit deploy` wrote it), this directory, then other deployments of the same name."""
    def both_layouts(directory: Path) -> list[tuple[Path, Path]]:
        deployed = Layout(directory, options.server)
        return [(directory / "fullchain.pem", directory / "key.pem"),
                (deployed.server_cert, deployed.server_key)]

    sources = both_layouts(cert_dir) if cert_dir else []
    sources += both_layouts(options.directory)
    for other in list_deployments(service.inventory):
        if other.name == options.name and other.directory != options.directory:
            sources += both_layouts(other.directory)
    return sources


def _load_matching(chain_path: Path, key_path: Path, valid: list[CertificateRecord]) -> _Credentials | None:
    if not (chain_path.is_file() and key_path.is_file()):
        return None
    try:
        chain_pem, key_pem = chain_path.read_bytes(), key_path.read_bytes()
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


def _issue(service, options: DeployOptions, passphrase_source, sans: SanRequest) -> _Credentials:
    """Issue the server certificate through the core workflow, in a private scratch directory."""
    authority = service.authority(passphrase_source)
    scratch = Path(tempfile.mkdtemp(prefix=".mtlskit-issue-", dir=options.directory))
    try:
        out = scratch / "server"
        [record] = issue_batch(service, authority, [IssueRequest(get_profile("server"), options.name, sans)],
                               [out], KeyType.parse("ec-p256"), BundleOptions())
        return _Credentials((out / "fullchain.pem").read_bytes(), (out / "key.pem").read_bytes(),
                            record, issued=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
