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
from typing import Iterator, Sequence

from mtlskit.ca.authority import Authority, random_serial
from mtlskit.errors import BadInput, Interrupted
from mtlskit.fileio import PRIVATE, make_dirs, write_new
from mtlskit.issue.bundle import BundleOptions, ChainPems, discard_staged, write_bundle
from mtlskit.issue.issuer import LeafTemplate, certificate_pem
from mtlskit.issue.journal import Journal
from mtlskit.lifecycle import renew as workflow
from mtlskit.lifecycle.renew import Renewal
from mtlskit.lifecycle.renew_checks import Job, check_distinct, load_key, prepare, read
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


@dataclasses.dataclass
class _Batch:
    jobs: list[Job]
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
    jobs = [prepare(record, now, out, reuse_key) for record in records]
    check_distinct(jobs)
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


def _templates(service, authority, jobs: list[Job], now: dt.datetime) -> dict[tuple, LeafTemplate]:
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


def _renew_one(batch: _Batch, job: Job) -> tuple:
    """Key, certificate, the staged directory; returns (serial, fingerprint, PEM, key type,
    subject and SANs as text)."""
    if job.key_file is not None:
        key = load_key(job.old.name, job.key_file, read(job.old.name, job.key_file, private=True))
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
    return (serial, hashlib.sha256(der).hexdigest(), pem.decode("ascii"), key_type_of(key),
            job.blueprint.subject.rfc4514_string(), tuple(names.general_name_text(n) for n in job.blueprint.sans))


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


def _successor(batch: _Batch, job: Job, result: tuple) -> CertificateRecord:
    serial, fingerprint, pem, key_type, subject, sans = result   # the text computed by the worker
    not_before, not_after = batch.templates[(job.old.profile, job.blueprint.lifetime)].validity
    return CertificateRecord(batch.issuer, serial, job.old.name, subject, sans, job.old.profile, key_type,
                             not_before, not_after, fingerprint, pem, directory=job.final)


def _publish(job: Job) -> bool:
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
