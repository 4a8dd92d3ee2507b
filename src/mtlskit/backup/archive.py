"""Writing and reading the tar file of a backup, trusting nothing in what is read.

Reading never calls tarfile's extraction: each header is checked (a regular file, a name
the manifest format allows, listed in the manifest, not seen before, of the listed size,
within the member limits) and its bytes are handed to a sink that hashes them, and
writes them only on the second pass. Links, devices, directories, ``..`` and absolute
names are refused by the first check that sees them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from mtlskit.backup.manifest import (MANIFEST, MAX_MANIFEST, MAX_MEMBERS, MEMBER_NAMES, Manifest, Member,
                                     parse_manifest, size_limit)
from mtlskit.errors import BadInput

CHUNK = 1024 * 1024
# (member, its bytes in chunks) -> the SHA-256 of what the sink consumed
Sink = Callable[[Member, Iterable[bytes]], str]


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file."""
    with open(path, "rb") as handle:
        return sha256_stream(handle)


def sha256_stream(handle: BinaryIO) -> tuple[int, str]:
    """Size and SHA-256 of what ``handle`` holds from where it stands to its end."""
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def write_archive(out: BinaryIO, manifest: Manifest, sources: dict[str, Path | bytes], mtime: int) -> None:
    """Write the tar: the manifest first, then each member in manifest order, each with
    the one header ``canonical_header`` gives (so a reader can demand exactly that).

    Args:
        sources: each member's bytes, or the file that holds them.
    """
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.GNU_FORMAT) as tar:
        body = manifest.to_json()
        tar.addfile(_info(MANIFEST, len(body), mtime), io.BytesIO(body))
        for member in manifest.members:
            source = sources[member.name]
            info = _info(member.name, member.size, mtime)
            if isinstance(source, bytes):
                tar.addfile(info, io.BytesIO(source))
            else:
                with open(source, "rb") as handle:
                    tar.addfile(info, handle)


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o600, mtime, 0, 0, "", ""
    return info


def canonical_header(name: str, size: int, mtime: int) -> bytes:
    """The one 512-byte header of a member. GNU format: names are short ASCII and a size
    past 8 GiB is written in base-256 in the header itself, so no extended (pax or long
    name) header is ever written, and a reader may refuse every one."""
    return _info(name, size, mtime).tobuf(tarfile.GNU_FORMAT, tarfile.ENCODING, "surrogateescape")


class _Layout:
    """Holds the archive to the bytes ``write_archive`` writes: each header exactly the
    canonical one, member after member with nothing between them but zero padding, and
    only the zero end blocks after the last. Together with the members' SHA-256 this
    leaves no byte of the file unchecked."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.next_offset = handle, 0

    def check(self, info: tarfile.TarInfo, mtime: int) -> None:
        header = canonical_header(info.name, info.size, mtime)
        if info.offset != self.next_offset or info.offset_data - info.offset != len(header) \
                or self._read(info.offset, len(header)) != header:
            raise BadInput(f"the tar header of {_shown(info.name)} is not the one `mtlskit backup` writes (the archive was changed)")
        end = info.offset_data + info.size
        self.next_offset = -(-end // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self._zeros(end, self.next_offset)

    def plain_header_next(self, offset: int) -> bool:
        """Refuse the header at ``offset`` before tarfile parses it unless it is a plain
        file's (or the end): a pax or GNU long-name header makes tarfile read its whole
        claimed size into memory, and mtlskit never writes one."""
        block = self._read(offset, tarfile.BLOCKSIZE)
        if len(block) == tarfile.BLOCKSIZE and block.count(0) != len(block) and block[156:157] not in (b"0", b"\0"):
            raise BadInput(f"the archive holds an entry of tar type {block[156:157]!r} after byte {offset}, "
                           "not a regular file: refused")
        return True

    def finish(self) -> None:
        size = os.fstat(self.handle.fileno()).st_size
        expected = -(-(self.next_offset + 2 * tarfile.BLOCKSIZE) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
        if size != expected:
            raise BadInput("the archive has bytes after its last member, or lacks its end (truncated or changed)")
        self._zeros(self.next_offset, size)

    def _zeros(self, start: int, end: int) -> None:
        while start < end:
            chunk = self._read(start, min(CHUNK, end - start))
            if not chunk or chunk.count(0) != len(chunk):
                raise BadInput("the archive has bytes outside its members (changed or truncated)")
            start += len(chunk)

    def _read(self, offset: int, size: int) -> bytes:
        self.handle.seek(offset)
        return self.handle.read(size)


def read_archive(handle: BinaryIO, sink: Sink | None = None) -> Manifest:
    """Check the archive in ``handle`` against its manifest; hand each member to ``sink``.

    Without a sink the members are only hashed. Every member must be in the manifest
    with its size and SHA-256, and every manifest entry must be in the archive.

    Raises:
        BadInput: the first thing found wrong (one line).
    """
    handle.seek(0)
    layout = _Layout(handle)
    try:
        layout.plain_header_next(0)        # tarfile.open reads the first header itself
        handle.seek(0)
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            manifest, mtime = _read_manifest(tar, layout)
            seen: set[str] = set()
            while layout.plain_header_next(tar.offset) and (info := tar.next()) is not None:
                if len(seen) >= MAX_MEMBERS or len(seen) >= len(manifest.members):
                    raise BadInput("the archive holds members its manifest does not list "
                                   f"(first: {_shown(info.name)})")
                member = _check_header(info, manifest, seen)
                layout.check(info, mtime)
                digest = (sink or _hash_only)(member, _chunks(tar, info))
                if digest != member.sha256:
                    raise BadInput(f"{member.name}: its SHA-256 does not match the manifest (the archive was changed)")
                tar.members.clear()   # headers are not kept: memory stays flat
    except (tarfile.TarError, EOFError) as exc:
        raise BadInput(f"the archive is damaged or truncated ({_shown(str(exc))})") from None
    missing = [m.name for m in manifest.members if m.name not in seen]
    if missing:
        raise BadInput(f"the archive lacks {missing[0]}, which its manifest lists (truncated or changed)")
    layout.finish()
    return manifest


def _read_manifest(tar: tarfile.TarFile, layout: _Layout) -> tuple[Manifest, int]:
    info = tar.next()
    if info is None or info.name != MANIFEST:
        raise BadInput(f"the archive does not start with {MANIFEST}: not an mtlskit backup")
    if not info.isreg() or info.size > MAX_MANIFEST:
        raise BadInput(f"the archive's {MANIFEST} is not a regular file of at most {MAX_MANIFEST} bytes")
    manifest = parse_manifest(b"".join(_chunks(tar, info)))
    mtime = created_epoch(manifest.created_at)
    layout.check(info, mtime)
    return manifest, mtime


def created_epoch(created_at: str) -> int:
    """The members' mtime: the manifest's created_at (``YYYY-MM-DDTHH:MM:SSZ``)."""
    try:
        when = dt.datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise BadInput("the archive's manifest has no valid created_at") from None
    return int(when.timestamp())


def _check_header(info: tarfile.TarInfo, manifest: Manifest, seen: set[str]) -> Member:
    name = info.name
    if not info.isreg() or info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise BadInput(f"the archive holds {_shown(name)}, which is not a regular file "
                       f"({_kind(info)}): refused")
    if not MEMBER_NAMES.match(name):
        raise BadInput(f"the archive holds a member name that is not allowed: {_shown(name)}")
    member = manifest.member(name)
    if member is None:
        raise BadInput(f"the archive holds {name}, which its manifest does not list")
    if name in seen:
        raise BadInput(f"the archive holds {name} twice")
    limit = size_limit(name)
    if info.size != member.size or (limit is not None and info.size > limit):
        raise BadInput(f"{name}: its size in the archive does not match the manifest (the archive was changed)")
    seen.add(name)
    return member


def _chunks(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Iterable[bytes]:
    stream = tar.extractfile(info)
    remaining = info.size
    while remaining > 0:
        chunk = stream.read(min(CHUNK, remaining))
        if not chunk:
            raise BadInput(f"the archive is truncated (in {info.name})")
        remaining -= len(chunk)
        yield chunk


def _hash_only(_member: Member, chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.isdir():
        return "a directory"
    if info.ischr() or info.isblk():
        return "a device"
    if info.isfifo():
        return "a FIFO"
    return f"tar type {info.type!r}"


def _shown(text: str) -> str:
    """A name from the archive, made safe to print on one line."""
    return repr(text[:80]) if not text.isprintable() or len(text) > 80 else text
