"""Issuance workflows: keys, certificates, files and inventory rows, all or nothing.

Batch issuance runs the crypto and file writing on every core (forked workers inherit
the signer; the CA key is never serialised) and commits in chunks. Each bundle is written
to a staging directory, recorded in the inventory, and only then moved into place; a
failure part-way leaves every certificate either recorded with its files, or absent.

Workers take ranges of the batch and send back only what the parent cannot know (serial,
fingerprint, PEM, the names as text); the parent inserts the rows and renames.

Before anything is staged the batch writes a journal in the home (issue/journal.py) and
holds its lock: if the batch is killed, the next command publishes what was recorded and
destroys, key and all, what was not. A stop request (SIGTERM, SIGINT: see cli/issue_cmd.py)
is honoured between results: what is signed so far is recorded and published, the rest
is discarded, and :class:`Interrupted` says how many were issued.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

from cryptography import x509

from mtlskit.ca.authority import Authority, random_serial
from mtlskit.errors import AlreadyExists, BadInput, Interrupted
from mtlskit.fileio import make_dirs
from mtlskit.issue.bundle import (BundleOptions, ChainPems, discard_staged, publish_staged,
                                  staging_dir, staging_name, write_bundle)
from mtlskit.issue import pool as pool_of
from mtlskit.issue.journal import CHAIN_PREFIX, Journal
from mtlskit.issue.issuer import (IssueRequest, LeafTemplate, certificate_pem, resolve_sans,
                                  validate_name)
from mtlskit.issue.subject import SubjectOptions
from mtlskit.pki import names
from mtlskit.pki.keys import KeyType, generate_private_key
from mtlskit.store.inventory import CertificateRecord

Progress = Callable[[int], None]
StopRequested = Callable[[], bool]
CHUNK_SIZE = 1000


class _Prepared(NamedTuple):  # a tuple: one per certificate, built in the serial part
    name: str
    fields: tuple[x509.NameAttribute, ...]  # C, ST, L, O, OU: the worker builds the subject
    sans: list[x509.GeneralName]
    final: Path | str    # as given (for messages)
    location: str        # absolute and normalised (strings: pathlib costs more than the rest)


@dataclasses.dataclass(frozen=True)
class _Batch:
    template: LeafTemplate
    jobs: list[_Prepared]
    key_type: KeyType
    chain: ChainPems
    options: BundleOptions
    parent_fd: int | None = None  # the one output directory, when every bundle goes there
    parent_pid: int | None = None  # the process that records, seen from forked workers
    record_directories: bool = True

    def staged(self, job: _Prepared) -> str:
        """Where a bundle is written: a name in parent_fd, or a path."""
        parent, name = os.path.split(job.location)
        return staging_name(name) if self.parent_fd is not None else os.path.join(parent, staging_name(name))

    def final(self, job: _Prepared) -> str:
        return os.path.basename(job.location) if self.parent_fd is not None else job.location


_batch: _Batch | None = None  # set in the parent before forking; workers read their copy


def issue_batch(service, authority: Authority, requests: Sequence[IssueRequest],
                directories: Sequence[Path], key_type: KeyType, options: BundleOptions,
                progress: Progress | None = None,
                stop_requested: StopRequested | None = None,
                record_directories: bool = True) -> list[CertificateRecord]:
    """Issue one certificate per request into its directory and record them all (with the
    directory, for `renew`, unless ``record_directories`` is False: a scratch directory).

    Raises:
        BadInput, PolicyViolation, AlreadyExists: before anything is signed or written.
        Interrupted: `stop_requested` said so; its `records` were issued, recorded and
            published, and nothing else is left on disk.
    """
    if not requests:
        raise BadInput("no names to issue")
    first = requests[0]
    template = LeafTemplate(authority, first.profile, service.settings.public_url, service.clock.now(),
                            first.days, first.hours)
    cwd = os.getcwd()
    jobs = [_prepare(template, request, directory, cwd) for request, directory in zip(requests, directories)]
    parents = _check_directories(jobs)
    chain, shared_dir = _shared_chain(ChainPems.of(authority.chain, authority.root.certificate), jobs, parents)
    parent_fd = None
    journal = None
    try:
        journal = Journal(service.settings.home, _staging_entries(jobs),
                          [str(shared_dir)] if shared_dir is not None else [])
        if len(parents) == 1:
            parent_fd = os.open(parents[0], os.O_RDONLY | os.O_DIRECTORY)
        batch = _Batch(template, jobs, key_type, chain, options, parent_fd, record_directories=record_directories)
        return _run(service, batch, progress or (lambda n: None), stop_requested or (lambda: False))
    finally:
        if parent_fd is not None:
            os.close(parent_fd)
        if shared_dir is not None:
            shutil.rmtree(shared_dir, ignore_errors=True)  # the bundles keep their links
        if journal is not None:
            journal.close()  # last: every staging directory is published or discarded


def _staging_entries(jobs: list[_Prepared]) -> Iterator[tuple[str, str]]:
    for job in jobs:
        parent, name = os.path.split(job.location)
        yield os.path.join(parent, staging_name(name)), job.location


def _prepare(template: LeafTemplate, request: IssueRequest, final: Path | str, cwd: str) -> _Prepared:
    name = validate_name(request.name)
    sans = resolve_sans(request)
    template.check_names(sans, name)
    location = os.path.normpath(os.path.join(cwd, final))  # os.path.abspath with one getcwd
    names.check_subject(name)
    return _Prepared(name, _fields_of(request.subject), sans, final, location)


@functools.lru_cache(maxsize=8)
def _fields_of(subject: SubjectOptions) -> tuple[x509.NameAttribute, ...]:
    """The name attributes of a batch's subject fields (shared by its requests): built once."""
    return tuple(subject.attributes())


def _check_directories(jobs: list[_Prepared]) -> list[str]:
    """Refuse duplicates and anything in the way, then create the parent directories.

    Returns:
        The distinct parent directories, in order of first use.
    """
    seen: set[str] = set()
    listings: dict[str, bool] = {}  # parent -> it has entries, so each job must be checked
    for job in jobs:
        if job.location in seen:
            raise BadInput(f"{job.name}: given twice")
        seen.add(job.location)
        parent = os.path.dirname(job.location)
        if parent not in listings:
            listings[parent] = _has_entries(parent)
        if listings[parent]:
            _check_free(job)
    for parent in listings:  # only once nothing was refused
        make_dirs(parent)  # 0755 whatever the umask
    return list(listings)


def _has_entries(directory: str) -> bool:
    """False when the directory is missing or empty: nothing of a batch can be in the way,
    so its thousands of jobs need no look-up each."""
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False


def _check_free(job: _Prepared) -> None:
    final = job.location
    if os.path.lexists(final) and (not os.path.isdir(final) or os.listdir(final)):
        raise AlreadyExists(f"{job.final} already exists and is not empty; refusing to overwrite",
                            hint="choose another --out, or move the old files away")
    parent, name = os.path.split(final)
    if os.path.lexists(os.path.join(parent, staging_name(name))):
        raise AlreadyExists(f"{staging_dir(Path(job.final))} is left over from an interrupted run",
                            hint="check whether its certificate is in `mtlskit list`, then remove it")


def _shared_chain(batch_chain: ChainPems, jobs: list[_Prepared],
                  parents: list[str]) -> tuple[ChainPems, Path | None]:
    """For a large batch into one directory, one copy of chain.pem and ca.pem to link to."""
    if len(jobs) < pool_of.PARALLEL_THRESHOLD or len(parents) != 1:
        return batch_chain, None
    shared = Path(tempfile.mkdtemp(prefix=CHAIN_PREFIX, dir=parents[0]))
    return batch_chain.shared_in(shared), shared


def _issue_range(bounds: tuple[int, int]) -> list[tuple]:
    """Worker: issue jobs[start:stop] (see :func:`_issue_one`)."""
    batch = _batch
    if batch.parent_pid is not None and os.getppid() != batch.parent_pid:
        os._exit(1)  # the parent is gone (where PR_SET_PDEATHSIG is missing): nobody records
    return [_issue_one(batch, batch.jobs[index]) for index in range(*bounds)]


def _issue_one(batch: _Batch, job: _Prepared) -> tuple:
    """Key, certificate, files in the staging directory; returns what the record needs:
    (serial, subject, SANs as text, SHA-256 fingerprint, PEM)."""
    key = generate_private_key(batch.key_type)
    serial = random_serial()
    subject = names.subject_name(job.name, job.fields)
    der = batch.template.sign_der(subject, job.sans, key.public_key(), serial)
    pem = certificate_pem(der)
    write_bundle(batch.staged(job), job.name, key, pem, batch.chain, batch.options, batch.parent_fd)
    return (serial, subject.rfc4514_string(), tuple(names.general_name_text(n) for n in job.sans),
            hashlib.sha256(der).hexdigest(), pem.decode("ascii"))


def _run(service, batch: _Batch, progress: Progress, stop_requested: StopRequested) -> list[CertificateRecord]:
    global _batch
    _batch = batch
    count = len(batch.jobs)
    workers = pool_of.worker_count(count)
    pool = None
    if workers > 1:
        batch = _batch = dataclasses.replace(batch, parent_pid=os.getpid())
        pool = pool_of.start(workers)
    issuer, profile, key_type = batch.template.signer.name, batch.template.profile.name, batch.key_type.value
    not_before, not_after = batch.template.validity
    done: list[CertificateRecord] = []

    def record(pending: list[CertificateRecord]) -> None:
        first = len(done)
        service.inventory.add_certificates(pending, service.clock.now())
        done.extend(pending)  # recorded: from here on its files are kept, whatever happens
        for recorded in batch.jobs[first:len(done)]:
            publish_staged(batch.staged(recorded), batch.final(recorded), batch.parent_fd)
        progress(len(pending))

    try:
        tasks = pool_of.task_ranges(count, workers)
        pending: list[CertificateRecord] = []
        for job, (serial, subject, sans, fingerprint, pem) in zip(batch.jobs, pool_of.results(pool, _issue_range, tasks, stop_requested)):
            pending.append(CertificateRecord(issuer, serial, job.name, subject, sans, profile, key_type,
                                             not_before, not_after, fingerprint, pem,
                                             directory=job.location if batch.record_directories else None))
            if len(pending) >= CHUNK_SIZE or len(done) + len(pending) == count:
                record(pending)
                pending = []
        if pending:  # stopped part-way: what is signed is kept
            record(pending)
        if len(done) < count:
            raise Interrupted(f"stopped after {len(done)} of {count} certificates", done, count)
    except BaseException:
        if pool:
            pool.terminate()  # and joined: no worker writes after this
        for job in batch.jobs[len(done):]:
            discard_staged(batch.staged(job), batch.parent_fd)
        raise
    finally:
        if pool:
            pool.close()
            pool.join()
        _batch = None
    return done
