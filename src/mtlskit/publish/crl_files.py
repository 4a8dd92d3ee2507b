"""The CRL files in HOME/crl/: PEM encoding, the chain's bundle, and their export.

    HOME/crl/<ca>.crl     DER
    HOME/crl/<ca>.pem     the same CRL in PEM (RFC 7468)
    HOME/crl/bundle.pem   the PEM CRLs of every CA in the chain, issuing CA first

The files are exports of what the inventory holds (``crl_state``): each is written to a
temporary file (fsync'd) and put in place with ``os.replace``, after the transaction
that signed the CRL has committed, and only if it is still the newest CRL of its CA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path


from mtlskit.errors import NotFound
from mtlskit.fileio import PUBLIC_DIR, make_dirs, remove_quietly, write_atomic, write_temp
from mtlskit.pki import der as der_codec
from mtlskit.publish.crl import crl_number_of
from mtlskit.store import crl_state as store

BUNDLE_FILE = "bundle.pem"


def export_crls(service, ders: dict[str, bytes]) -> bytes | None:
    """Write the given CRLs and the chain's bundle to HOME/crl/. Returns the bundle
    (None while some CA of the chain has no CRL yet).

    Files are written after the commit, so two publishers could finish in the wrong
    order; under a lock file, a CRL is written only if it is still the newest in the
    inventory, and the bundle is made of the newest CRL of each CA.
    """
    with staged_export(service) as export:
        export.stage(ders)
        return export.publish()


@contextlib.contextmanager
def staged_export(service):
    """A ``CrlExport`` for one publication; its temporary files never outlive it.

    Used around the transaction that signs the CRLs: ``stage()`` them before the commit
    (the PEM encoding and the disk writes then overlap the database's commit), and
    ``publish()`` after it. When the transaction fails, nothing is published.
    """
    export = CrlExport(service)
    try:
        yield export
    finally:
        export.close()


@dataclasses.dataclass(frozen=True)
class _Staged:
    """A file written to a temporary name: its bytes, its path, and the CRL number of
    each CRL in it by CA name (what makes it current or stale when it is published)."""

    data: bytes
    path: Path
    numbers: dict[str, int | None]


class CrlExport:
    """Writing the CRL files of one publication in two steps.

    ``stage(ders)`` starts, in threads, writing each CRL to a temporary file in
    HOME/crl/ (DER, and PEM once encoded), then the bundle; each is fsync'd. fsync and
    SQLite's commit release the GIL, so the disk waits overlap the CPU work and the
    commit. ``publish()`` puts them in place with ``os.replace`` (each file changes
    atomically); ``close()`` removes whatever temporary file is left.
    """

    def __init__(self, service) -> None:
        self.service = service
        self.crl_dir: Path = service.settings.crl_dir
        # Two threads: one writes while the other encodes PEM. (Each thread start waits for
        # the GIL, which the PEM encoder holds in turns: more threads cost more than they give.)
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._per_ca: dict[str, tuple[Future, Future]] = {}
        self._bundle: Future | None = None
        self._placed: set[Path] = set()
        #: the CRL number of each CA in the bundle ``publish()`` put in place
        self.published: dict[str, int | None] = {}

    def stage(self, ders: dict[str, bytes]) -> None:
        """Start writing ``ders`` (DER by CA name) and the chain's bundle to temporary files."""
        make_dirs(self.crl_dir, PUBLIC_DIR)   # public files; HOME itself is 0700
        for name, der in ders.items():
            numbers = {name: crl_number_of(der)}
            self._per_ca[name] = (
                self._pool.submit(self._write, f"{name}.crl", lambda der=der: der, numbers),
                self._pool.submit(self._write, f"{name}.pem", lambda der=der: pem_crl(der), numbers))
        # Submitted last: the jobs run in order, so the PEM jobs it waits for have started
        # by the time it does (it cannot wait for a job queued behind it).
        self._bundle = self._pool.submit(self._write_bundle, dict(self._per_ca))

    def _write(self, file_name: str, produce, numbers: dict[str, int | None]) -> _Staged:
        data = produce()
        return _Staged(data, write_temp(self.crl_dir / file_name, data), numbers)

    def _write_bundle(self, per_ca: dict[str, tuple[Future, Future]]) -> _Staged | None:
        """The bundle of the staged CRLs and the stored CRLs of the other CAs of the
        chain; None while one of them has no CRL."""
        staged = {name: pem_job.result() for name, (_der_job, pem_job) in per_ca.items()}
        try:
            parts, numbers = _chain_pems(self.service, {name: pem.data for name, pem in staged.items()})
        except NotFound:
            return None
        for pem in staged.values():
            numbers.update(pem.numbers)
        return self._write(BUNDLE_FILE, lambda: b"".join(parts), numbers)

    def publish(self) -> bytes | None:
        """Put the staged files in place; returns the bundle (None while some CA of the
        chain has no CRL yet). Re-raises a failed write.

        Under the lock, a staged file is put in place only if every CRL in it is still
        the newest in the inventory; when a newer one was committed meanwhile, its
        publisher writes it (and the bundle is made again of the newest CRLs).
        """
        with _export_lock(self.crl_dir) as file_system_now:
            _remove_abandoned(self.crl_dir, file_system_now, keep=self._staged_paths())
            newest = _crl_numbers(self.service)

            def current(staged: _Staged) -> bool:
                return all(newest.get(name) == number for name, number in staged.numbers.items())

            pems, numbers = {}, {}
            for name, (der_job, pem_job) in self._per_ca.items():
                der_file, pem_file = der_job.result(), pem_job.result()
                if current(der_file):
                    self._place(der_file, f"{name}.crl")
                    self._place(pem_file, f"{name}.pem")
                    pems[name] = pem_file.data
                    numbers.update(der_file.numbers)
            staged_bundle = self._bundle.result() if self._bundle is not None else None
            if staged_bundle is not None and current(staged_bundle):
                self._place(staged_bundle, BUNDLE_FILE)
                self.published = dict(staged_bundle.numbers)
                return staged_bundle.data
            try:
                parts, stored_numbers = _chain_pems(self.service, pems)
            except NotFound:
                return None
            bundle = b"".join(parts)
            write_atomic(self.crl_dir / BUNDLE_FILE, bundle)
            self.published = {**numbers, **stored_numbers}
            return bundle

    def _staged_paths(self) -> set[Path]:
        """The temporary files this export wrote (never "abandoned", whatever the clocks
        say); waits for its writers (``exception()`` blocks until a job is done)."""
        jobs = [job for pair in self._per_ca.values() for job in pair] + [self._bundle] * bool(self._bundle)
        return {job.result().path for job in jobs if job.exception() is None and job.result() is not None}

    def _place(self, staged: _Staged, file_name: str) -> None:
        os.replace(staged.path, self.crl_dir / file_name)
        self._placed.add(staged.path)

    def close(self) -> None:
        """Wait for the writers and remove the temporary files not put in place."""
        self._pool.shutdown(wait=True)
        jobs = [job for pair in self._per_ca.values() for job in pair] + [self._bundle] * bool(self._bundle)
        for job in jobs:
            staged = job.result() if job.exception() is None else None  # a failed write left nothing
            if staged is not None and staged.path not in self._placed:
                remove_quietly(staged.path)


#: A temporary file older than this was left by a publisher that died before putting
#: it in place (staging a million-entry CRL takes seconds).
ABANDONED_AFTER = 3600


def _remove_abandoned(crl_dir: Path, file_system_now: float, keep: set[Path]) -> None:
    """Remove the temporary files of publishers that crashed between staging and publishing.

    Ages are measured on the file system's own clock (``file_system_now``, the mtime it
    just gave the lock file), not the process's: on a home whose file server runs behind
    (or a host whose clock runs ahead), a file written a second ago looked an hour old.
    """
    limit = file_system_now - ABANDONED_AFTER
    for path in crl_dir.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if path not in keep and path.stat().st_mtime < limit:
                remove_quietly(path)


@contextlib.contextmanager
def _export_lock(crl_dir: Path):
    """Hold HOME/crl/.lock; yields the file system's "now" (the mtime it gives the lock)."""
    lock = crl_dir / ".lock"
    with os.fdopen(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600), "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            os.utime(handle.fileno())
            yield os.fstat(handle.fileno()).st_mtime
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _crl_numbers(service) -> dict[str, int]:
    with service.inventory.read() as tx:
        return store.crl_numbers(tx)


def chain_names(service) -> list[str]:
    """CA names of the chain, issuing CA first, root last (the order of a chain file)."""
    return list(reversed(list(service.ca_certificates())))


def crl_bundle_pem(service, known_pems: dict[str, bytes] | None = None) -> bytes:
    """The PEM CRLs of every CA in the chain (issuing CA first, root included).

    ``known_pems`` are PEMs of CRLs just published (saves encoding them again).

    Raises:
        NotFound: a CA of the chain has no CRL yet (a bundle without it would make
            Nginx/Apache/HAProxy refuse every client).
    """
    return b"".join(_chain_pems(service, known_pems or {})[0])


def _chain_pems(service, known_pems: dict[str, bytes]) -> tuple[list[bytes], dict[str, int | None]]:
    """The PEM CRL of every CA of the chain, in bundle order: ``known_pems`` as given,
    the others encoded from the inventory, with the CRL numbers of the latter.

    Raises:
        NotFound: a CA of the chain has no CRL yet.
    """
    names = chain_names(service)
    stored = _stored_ders(service, [name for name in names if name not in known_pems])
    parts, numbers = [], {}
    for name in names:
        if name in known_pems:
            parts.append(known_pems[name])
        elif name in stored:
            parts.append(pem_crl(stored[name]))
            numbers[name] = crl_number_of(stored[name])
        else:
            raise NotFound(f"no CRL published for CA {name!r}",
                           hint="run `mtlskit crl` to publish the CRLs of every CA")
    return parts, numbers


def _stored_ders(service, names: list[str]) -> dict[str, bytes]:
    """The last CRL published of each CA in ``names`` that has one (DER by CA name)."""
    with service.inventory.read() as tx:
        return store.stored_ders(tx, names)


def pem_crl(der: bytes) -> bytes:
    """RFC 7468 PEM of a DER CRL ("X509 CRL")."""
    return der_codec.pem("X509 CRL", der)
