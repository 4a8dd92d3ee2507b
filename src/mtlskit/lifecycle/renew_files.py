"""Local renewal with files: stage, record, swap (see mtlskit.lifecycle.renew).

Each renewal stages a complete directory beside the live one (``.NAME.partial``, the name
batch issuance stages under, so the journal's sweep knows it): the new key.pem, cert.pem,
chain.pem, fullchain.pem, ca.pem (and bundle.p12 when the old directory had one with its
bundle.pass), the previous files as ``*.prev`` (hard links: key.pem.prev keeps 0600), and
any other file the directory held. Once the successors are recorded, each staged directory
is exchanged with the live one in one renameat2(RENAME_EXCHANGE): a reader sees the old set
or the new set, never a mixture. Many renewals run on every core, as batch issuance does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import multiprocessing
import os
import shutil
import signal
import stat
from typing import Iterator, NamedTuple, Sequence

from cryptography.hazmat.primitives import serialization

from mtlskit.ca.authority import Authority, random_serial
from mtlskit.errors import AlreadyExists, BadInput, Interrupted, PolicyViolation
from mtlskit.fileio import PRIVATE, InputRefused, make_dirs, read_input, write_new
from mtlskit.issue.bundle import BundleOptions, ChainPems, discard_staged, staging_name, write_bundle
from mtlskit.issue.issuer import LeafTemplate, certificate_pem
from mtlskit.issue.journal import Journal
from mtlskit.lifecycle import renew as workflow
from mtlskit.lifecycle.renew import Blueprint, Renewal
from mtlskit.lifecycle.swap_dirs import exchange
from mtlskit.pki import names
from mtlskit.pki.keys import KeyType, generate_private_key, key_type_of
from mtlskit.store.inventory import CertificateRecord

#: The files `issue` writes; each is kept as NAME.prev when it is replaced.
BUNDLE_FILES = ("key.pem", "cert.pem", "chain.pem", "fullchain.pem", "ca.pem", "bundle.p12", "bundle.pass")
PREV_SUFFIX = ".prev"
CHUNK_SIZE = 1000
PARALLEL_THRESHOLD = 64
TASK_SIZE = 50
POLL_SECONDS = 0.1


class _Job(NamedTuple):
    old: CertificateRecord
    blueprint: Blueprint
    final: str          # absolute directory the files go to
    staged: str         # the staging directory beside it
    exists: bool        # final exists (swap) or not (a plain rename, as issue does)
    key_file: str | None   # --reuse-key: the key to read again
    p12_password: bytes | None  # the old bundle.pass, when bundle.p12 is to be renewed too


@dataclasses.dataclass
class _Batch:
    jobs: list[_Job]
    templates: dict[tuple, LeafTemplate]
    chain: ChainPems
    issuer: str
    parent_pid: int | None = None


_batch: _Batch | None = None  # set in the parent before forking; workers read their copy


def renew_with_files(service, authority: Authority, records: Sequence[CertificateRecord], *,
                     reuse_key: bool = False, out: str | None = None, revoke_old: bool = False,
                     progress=None, stop_requested=None) -> list[Renewal]:
    if not records:
        raise BadInput("nothing to renew")
    if out is not None and len(records) > 1:
        raise BadInput("--out names one directory: give one certificate to renew with it")
    now = service.clock.now()
    jobs = [_prepare(record, now, out, reuse_key) for record in records]
    _check_distinct(jobs)
    templates = _templates(service, authority, jobs, now)
    for parent in {os.path.dirname(job.final) for job in jobs}:  # only once nothing was refused
        make_dirs(parent)
    chain = ChainPems.of(authority.chain, authority.root.certificate)
    journal = Journal(service.settings.home, [(job.staged, job.final) for job in jobs])
    try:
        batch = _Batch(jobs, templates, chain, authority.issuing.name)
        renewals = _run(service, batch, now, progress or (lambda n: None), stop_requested or (lambda: False))
    finally:
        journal.close()
    if revoke_old and renewals:
        _revoke(service, authority, renewals)
    return renewals


def _prepare(old: CertificateRecord, now: dt.datetime, out: str | None, reuse_key: bool) -> _Job:
    """Everything checked before anything is signed or written.

    Raises:
        PolicyViolation, BadInput, AlreadyExists: why this one cannot be renewed.
    """
    workflow.check_renewable(old, now)
    what = f"{old.name} (serial {old.serial_hex})"
    if out is None and old.directory is None:
        raise BadInput(f"{what}: no directory was recorded when it was issued, so there is "
                       "nowhere to write its successor",
                       hint="give --out DIR (a server certificate `deploy` issued is renewed by running `deploy` again)")
    final = os.path.abspath(out if out is not None else old.directory)
    exists = _check_final(what, final, out is None)
    staged = os.path.join(os.path.dirname(final), staging_name(os.path.basename(final)))
    if os.path.lexists(staged):
        raise AlreadyExists(f"{staged} is left over from an interrupted run",
                            hint="check whether its certificate is in `mtlskit list`, then remove it")
    key_type = _key_type(what, old.key_type)
    key_file = None
    if reuse_key:
        key_file = _check_reused_key(what, old, final if out is None else old.directory)
    elif exists:
        _check_key_not_encrypted(what, final)
    blueprint = dataclasses.replace(workflow.blueprint_of(old), key_type=key_type.value)
    return _Job(old, blueprint, final, staged, exists, key_file, _p12_password(what, final) if exists else None)


def _check_final(what: str, final: str, recorded: bool) -> bool:
    """True when ``final`` is an existing directory of plain files; False when missing
    (only with --out)."""
    try:
        info = os.lstat(final)
    except FileNotFoundError:
        if recorded:
            raise BadInput(f"{what}: its directory {final} is gone", hint="give --out DIR") from None
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{what}: {final} is not a directory; refusing to replace it")
    for entry in os.scandir(final):
        if not entry.is_file(follow_symlinks=False):
            raise BadInput(f"{what}: {final} holds {entry.name!r}, which is not a regular file; "
                           "renew only replaces a directory of certificate files")
    return True


def _key_type(what: str, text: str) -> KeyType:
    try:
        return KeyType(text)
    except ValueError:
        raise PolicyViolation(f"{what}: its key type {text} is not one mtlskit generates",
                              hint="renew it with --reuse-key") from None


def _read(what: str, path: str, private: bool = False) -> bytes:
    try:
        return read_input(path, private=private)
    except InputRefused as exc:
        raise BadInput(f"{what}: cannot use {path}: {exc}") from None


def _check_reused_key(what: str, old: CertificateRecord, directory: str | None) -> str:
    """The key.pem --reuse-key reads: present, unencrypted, and the old certificate's."""
    if directory is None:
        raise BadInput(f"{what}: --reuse-key needs the directory it was issued into, and none was recorded")
    path = os.path.join(directory, "key.pem")
    if not os.path.lexists(path):
        raise BadInput(f"{what}: --reuse-key, but {path} is missing", hint="renew it without --reuse-key")
    key = _load_key(what, path, _read(what, path, private=True))
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    certificate_key = workflow.blueprint_public_key(old)
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            certificate_key.public_bytes(serialization.Encoding.DER, public):
        raise BadInput(f"{what}: {path} is not the key of this certificate; refusing to reuse it",
                       hint="renew it without --reuse-key")
    return path


def _load_key(what: str, path: str, data: bytes):
    if b"ENCRYPTED" in data:
        raise BadInput(f"{what}: {path} is encrypted with a password mtlskit does not have",
                       hint="decrypt it first, or issue a new certificate with --key-password")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BadInput(f"{what}: {path} is not a PEM private key") from None


def _check_key_not_encrypted(what: str, final: str) -> None:
    """A new key written unencrypted where an encrypted one was would weaken it silently."""
    path = os.path.join(final, "key.pem")
    if os.path.isfile(path) and b"ENCRYPTED" in _read(what, path)[:64]:
        raise BadInput(f"{what}: {path} is encrypted with a password mtlskit does not have; "
                       "the new key would be written in clear", hint="issue a new certificate with --key-password")


def _p12_password(what: str, final: str) -> bytes | None:
    """The password to renew bundle.p12 with: bundle.pass, written when it was made."""
    if not os.path.isfile(os.path.join(final, "bundle.p12")):
        return None
    path = os.path.join(final, "bundle.pass")
    if not os.path.isfile(path):
        raise BadInput(f"{what}: {final}/bundle.p12 was made with a password mtlskit does not have",
                       hint="move bundle.p12 away, renew, then `mtlskit export` a new one")
    return _read(what, path, private=True).rstrip(b"\r\n")


def _check_distinct(jobs: list[_Job]) -> None:
    seen: dict[str, CertificateRecord] = {}
    for job in jobs:
        if job.final in seen:
            raise BadInput(f"{job.old.name} and {seen[job.final].name} were both written to "
                           f"{job.final}; renew them one at a time, with --out for one of them")
        seen[job.final] = job.old


def _templates(service, authority, jobs: list[_Job], now: dt.datetime) -> dict[tuple, LeafTemplate]:
    """One template per (profile, lifetime): a fleet issued together shares one."""
    templates: dict[tuple, LeafTemplate] = {}
    for job in jobs:
        key = (job.old.profile, job.blueprint.lifetime)
        if key not in templates:
            templates[key] = workflow.template_for(service, authority, job.old, job.blueprint, now)
        common_name = names.common_name_of(job.blueprint.subject)
        templates[key].check_names(job.blueprint.sans, common_name if templates[key].name_constraints else None)
    return templates


# --- workers -----------------------------------------------------------------------

def _renew_range(bounds: tuple[int, int]) -> list[tuple]:
    batch = _batch
    if batch.parent_pid is not None and os.getppid() != batch.parent_pid:
        os._exit(1)
    return [_renew_one(batch, batch.jobs[index]) for index in range(*bounds)]


def _renew_one(batch: _Batch, job: _Job) -> tuple:
    """Key, certificate, the staged directory; returns (serial, fingerprint, PEM, key type)."""
    if job.key_file is not None:
        key = _load_key(job.old.name, job.key_file, _read(job.old.name, job.key_file, private=True))
    else:
        key = generate_private_key(KeyType(job.blueprint.key_type))
    template = batch.templates[(job.old.profile, job.blueprint.lifetime)]
    serial = random_serial()
    der = template.sign_der(job.blueprint.subject, job.blueprint.sans, key.public_key(), serial)
    pem = certificate_pem(der)
    options = BundleOptions(p12=job.p12_password is not None, p12_password=job.p12_password)
    write_bundle(job.staged, job.old.name, key, pem, batch.chain, options)
    if job.p12_password is not None:  # the same password, where it was
        write_new(os.path.join(job.staged, "bundle.pass"), job.p12_password + b"\n", PRIVATE)
    if job.exists:
        _carry_over(job.final, job.staged)
    return serial, hashlib.sha256(der).hexdigest(), pem.decode("ascii"), key_type_of(key)


def _carry_over(final: str, staged: str) -> None:
    """Into the staged directory: each file of ours as NAME.prev, every other file as it is
    (hard links: same inode, same mode). A file the new set has no counterpart of (an old
    bundle.p12 never renewed) is kept as .prev only."""
    for entry in os.scandir(final):
        if entry.name in BUNDLE_FILES:
            _link(entry.path, os.path.join(staged, entry.name + PREV_SUFFIX))
        elif not (entry.name.endswith(PREV_SUFFIX) and entry.name[:-len(PREV_SUFFIX)] in BUNDLE_FILES):
            _link(entry.path, os.path.join(staged, entry.name))


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        return
    except OSError:  # a filesystem without hard links
        shutil.copy2(source, target)


def _start_worker(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _results(pool, tasks: Iterator[tuple[int, int]], stop_requested) -> Iterator[tuple]:
    if pool is None:
        for task in tasks:
            if stop_requested():
                return
            yield from _renew_range(task)
        return
    pending = pool.imap(_renew_range, tasks)
    while not stop_requested():
        try:
            yield from pending.next(POLL_SECONDS)
        except multiprocessing.TimeoutError:
            continue
        except StopIteration:
            return


# --- the parent: record, then swap ----------------------------------------------------

def _run(service, batch: _Batch, now: dt.datetime, progress, stop_requested) -> list[Renewal]:
    global _batch
    _batch = batch
    count = len(batch.jobs)
    workers = min(os.cpu_count() or 1, max(1, count // PARALLEL_THRESHOLD))
    pool = None
    if workers > 1:
        batch = _batch = dataclasses.replace(batch, parent_pid=os.getpid())
        pool = multiprocessing.get_context("fork").Pool(workers, _start_worker, (os.getpid(),))
    done: list[Renewal] = []
    removals = []  # the replaced sets, removed by the workers while the parent goes on
    replaced: list[str] = []  # every one of them, for the clean-up after a failure

    def record(pending: list[Renewal]) -> None:
        workflow.record_successors(service, [(r.old, r.new) for r in pending], service.clock.now())
        first = len(done)
        done.extend(pending)  # recorded: from here on the new files are kept, whatever happens
        swapped = []
        for job in batch.jobs[first:len(done)]:
            if _publish(job):
                swapped.append(job.staged)
                replaced.append(job.staged)
        if pool is None:
            _remove_trees(swapped)
        else:
            removals.append(pool.map_async(_remove_trees, [swapped[i:i + TASK_SIZE]
                                                           for i in range(0, len(swapped), TASK_SIZE)]))
        progress(len(pending))

    try:
        size = max(1, min(TASK_SIZE, count // (workers * 8)))
        tasks = ((start, min(start + size, count)) for start in range(0, count, size))
        pending: list[Renewal] = []
        for job, result in zip(batch.jobs, _results(pool, tasks, stop_requested)):
            pending.append(Renewal(job.old, _successor(batch, job, result), job.final))
            if len(pending) >= CHUNK_SIZE:
                record(pending)
                pending = []
        if pending:
            record(pending)
        for removal in removals:
            removal.get()
        if len(done) < count:
            raise Interrupted(f"stopped after {len(done)} of {count} renewals", done, count)
    except BaseException:
        if pool:
            pool.terminate()
        for job in batch.jobs[len(done):]:
            discard_staged(job.staged)
        _remove_trees(replaced)
        raise
    finally:
        if pool:
            pool.close()
            pool.join()
        _batch = None
    return done


def _successor(batch: _Batch, job: _Job, result: tuple) -> CertificateRecord:
    serial, fingerprint, pem, key_type = result
    template = batch.templates[(job.old.profile, job.blueprint.lifetime)]
    not_before, not_after = template.validity
    return CertificateRecord(
        batch.issuer, serial, job.old.name, job.blueprint.subject.rfc4514_string(),
        tuple(names.general_name_text(n) for n in job.blueprint.sans), job.old.profile, key_type,
        not_before, not_after, fingerprint, pem, directory=job.final)


def _publish(job: _Job) -> bool:
    """The staged directory becomes the live one. True when the replaced set is left at
    ``job.staged`` for :func:`_remove_trees` (its files live on as *.prev); a killed run
    leaves it to the journal's sweep (its certificate is superseded: destroyed)."""
    if not job.exists:
        os.rename(job.staged, job.final)
        return False
    exchange(job.staged, job.final)
    return True


def _remove_trees(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _revoke(service, authority, renewals: list[Renewal]) -> None:
    from mtlskit.revoke.revoker import revoke

    revoke(service, authority, [f"serial:{r.old.serial_hex}" for r in renewals], reason="superseded")
