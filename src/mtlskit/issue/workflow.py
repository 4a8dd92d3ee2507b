"""Issuance workflows: keys, certificates, files and inventory rows, all or nothing.

Batch issuance runs the crypto and file writing on every core (forked workers inherit
the signer; the CA key is never serialised) and commits in chunks. Each bundle is written
to a staging directory, recorded in the inventory, and only then moved into place; a
failure part-way leaves every certificate either recorded with its files, or absent.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from cryptography import x509

from mtlskit.ca.authority import Authority
from mtlskit.errors import AlreadyExists, BadInput
from mtlskit.issue.bundle import (BundleOptions, ChainPems, discard_staged, publish_staged,
                                  staging_dir, write_bundle)
from mtlskit.issue.issuer import IssueRequest, LeafTemplate, record_of, resolve_sans, validate_name
from mtlskit.pki import names
from mtlskit.pki.keys import KeyType, generate_private_key
from mtlskit.store.inventory import CertificateRecord

Progress = Callable[[int], None]
CHUNK_SIZE = 1000
PARALLEL_THRESHOLD = 64


@dataclasses.dataclass(frozen=True)
class _Prepared:
    name: str
    subject: x509.Name
    sans: list[x509.GeneralName]
    final: Path

    @property
    def staged(self) -> Path:
        return staging_dir(self.final)


@dataclasses.dataclass(frozen=True)
class _Batch:
    template: LeafTemplate
    jobs: list[_Prepared]
    key_type: KeyType
    chain: ChainPems
    options: BundleOptions


_batch: _Batch | None = None  # set in the parent before forking; workers read their copy


def issue_batch(service, authority: Authority, requests: Sequence[IssueRequest],
                directories: Sequence[Path], key_type: KeyType, options: BundleOptions,
                progress: Progress | None = None) -> list[CertificateRecord]:
    """Issue one certificate per request into its directory and record them all.

    Raises:
        BadInput, PolicyViolation, AlreadyExists: before anything is signed or written.
    """
    if not requests:
        raise BadInput("no names to issue")
    profile, days = requests[0].profile, requests[0].days
    template = LeafTemplate(authority, profile, service.settings.public_url, service.clock.now(), days)
    jobs = [_prepare(template, request, Path(directory)) for request, directory in zip(requests, directories)]
    _check_directories(jobs)
    chain, shared_dir = _shared_chain(ChainPems.of(authority.chain, authority.root.certificate), jobs)
    try:
        return _run(service, _Batch(template, jobs, key_type, chain, options), progress or (lambda n: None))
    finally:
        if shared_dir is not None:
            shutil.rmtree(shared_dir, ignore_errors=True)  # the bundles keep their links


def _prepare(template: LeafTemplate, request: IssueRequest, final: Path) -> _Prepared:
    name = validate_name(request.name)
    sans = resolve_sans(request)
    template.check_names(sans)
    return _Prepared(name, names.subject_name(name, org_unit=request.org_unit), sans, final)


def _check_directories(jobs: list[_Prepared]) -> None:
    seen: set[str] = set()
    for job in jobs:
        final = os.path.abspath(job.final)
        if final in seen:
            raise BadInput(f"{job.name}: given twice")
        seen.add(final)
        if os.path.lexists(final) and (not os.path.isdir(final) or os.listdir(final)):
            raise AlreadyExists(f"{job.final} already exists and is not empty; refusing to overwrite",
                                hint="choose another --out, or move the old files away")
        if os.path.lexists(job.staged):
            raise AlreadyExists(f"{job.staged} is left over from an interrupted run",
                                hint="check whether its certificate is in `mtlskit list`, then remove it")
    for parent in {job.final.parent for job in jobs}:  # only once nothing was refused
        parent.mkdir(parents=True, exist_ok=True)


def _shared_chain(batch_chain: ChainPems, jobs: list[_Prepared]) -> tuple[ChainPems, Path | None]:
    """For a large batch into one directory, one copy of chain.pem and ca.pem to link to."""
    parents = {job.final.parent for job in jobs}
    if len(jobs) < PARALLEL_THRESHOLD or len(parents) != 1:
        return batch_chain, None
    shared = Path(tempfile.mkdtemp(prefix=".mtlskit-chain-", dir=parents.pop()))
    return batch_chain.shared_in(shared), shared


def _issue_one(index: int) -> CertificateRecord:
    """Worker: key, certificate, files in the staging directory; returns the record."""
    batch = _batch
    job = batch.jobs[index]
    key = generate_private_key(batch.key_type)
    certificate = batch.template.sign(job.subject, job.sans, key.public_key())
    record = record_of(certificate, batch.template.signer.name, job.name, batch.template.profile.name,
                       job.sans, batch.key_type.value)
    write_bundle(job.staged, job.name, key, certificate, batch.chain, batch.options, record.pem.encode())
    return record


def _run(service, batch: _Batch, progress: Progress) -> list[CertificateRecord]:
    global _batch
    _batch = batch
    count = len(batch.jobs)
    workers = min(os.cpu_count() or 1, max(1, count // PARALLEL_THRESHOLD))
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    done: list[CertificateRecord] = []
    try:
        results = pool.imap(_issue_one, range(count), chunksize=32) if pool else map(_issue_one, range(count))
        pending: list[CertificateRecord] = []
        for record in results:
            pending.append(record)
            if len(pending) >= CHUNK_SIZE or len(done) + len(pending) == count:
                first = len(done)
                service.inventory.add_certificates(pending, service.clock.now())
                done += pending  # recorded: from here on its files are kept, whatever happens
                for job in batch.jobs[first:len(done)]:
                    publish_staged(job.staged, job.final)
                progress(len(pending))
                pending = []
    except BaseException:
        if pool:
            pool.terminate()
        for job in batch.jobs[len(done):]:
            discard_staged(job.staged)
        raise
    finally:
        if pool:
            pool.close()
            pool.join()
        _batch = None
    return done
