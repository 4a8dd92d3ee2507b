"""Who reads which file of a deployment, and whether the POSIX mode bits let them (``--check``).

A server started as root opens its key, certificates, CRL and configuration as root, then
serves as an unprivileged worker user; files opened per request are opened by that worker.
Apache's mod_lua loads the fingerprint hook in the worker, so a hook under a 0700 parent
answers 500 to every verified client; nginx workers write request bodies into the
standalone deployment's temp directories. Started by anyone else, a server never changes
user, so everything is read by whoever starts it (taken to be who runs ``mtlskit deploy``).

Only mode bits and ownership are read (no ACLs): a pure walk over ``os.stat``.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re
import stat
from pathlib import Path

from mtlskit.deploy.authz import SECRET_FILE
from mtlskit.deploy.options import DeployOptions
from mtlskit.deploy.render import APACHE_LUA_FILE, Layout

# Where the include-only configurations run: the distribution's own main files.
SYSTEM_NGINX_CONF = Path("/etc/nginx/nginx.conf")
SYSTEM_APACHE_ENVVARS = Path("/etc/apache2/envvars")
NGINX_DEFAULT_USER = "nobody"        # nginx's built-in default when no `user` directive is given
APACHE_DEFAULT_USER = "www-data"

READ, SEARCH = stat.S_IROTH, stat.S_IXOTH     # the "other" bits; shifted for owner/group


@dataclasses.dataclass(frozen=True)
class Reader:
    """A user as the kernel sees it: uid and every group it belongs to."""

    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def named(cls, name: str) -> "Reader":
        entry = pwd.getpwnam(name)
        groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
        return cls(name, entry.pw_uid, frozenset(groups))

    @classmethod
    def current(cls) -> "Reader":
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, frozenset({os.getegid(), *os.getgroups()}))


def unreadable(options: DeployOptions) -> str | None:
    """The first file of the installed deployment its reader cannot open, as one line, or None."""
    starter = Reader.current()
    worker = worker_reader(options, starter)
    needs = [(starter, path, READ) for path in startup_files(options)]
    needs += [(worker, path, need) for path, need in worker_files(options)]
    for reader, path, need in needs:
        blocked = denied(path, reader, need)
        if blocked is not None:
            role = "worker user" if reader is worker and reader is not starter else "user"
            what = "read" if need == READ else "enter"
            return (f"the {options.server} {role} {reader.name} cannot {what} {path}: {blocked}")
    return None


def startup_files(options: DeployOptions) -> list[Path]:
    """What the server opens when it starts or reloads (as the user that starts it)."""
    layout = Layout(options.directory, options.server)
    files = [layout.server_key, layout.server_cert, layout.client_ca]
    if options.revocation == "crl":
        files.append(layout.crl)
        if options.server == "haproxy":
            files.append(layout.revoked_serials)
    staple = layout.server_cert.with_name(layout.server_cert.name + ".ocsp")   # HAProxy's stapled OCSP
    if options.server == "haproxy" and staple.exists():
        files.append(staple)
    if options.policy is not None:    # included by the site: read with it (0600, like the key)
        files.append(options.directory / SECRET_FILE)
    files.append(layout.main if options.standalone else layout.site)
    return files


def worker_files(options: DeployOptions) -> list[tuple[Path, int]]:
    """What the unprivileged worker opens while it serves requests, with READ or SEARCH."""
    if options.server == "apache":
        return [(options.directory / APACHE_LUA_FILE, READ)]
    if options.server == "nginx" and options.standalone:
        return [(options.directory, SEARCH)]      # client_body_temp/, proxy_temp/ live there
    return []


def worker_reader(options: DeployOptions, starter: Reader) -> Reader:
    """The worker user: who the server becomes after a start as root; else the starter."""
    if starter.uid != 0:
        return starter
    name = _worker_name(options)
    try:
        return Reader.named(name)
    except KeyError:
        return starter        # the server refuses to start; its own test says so


def _worker_name(options: DeployOptions) -> str:
    if options.server == "apache":
        if options.standalone:
            return options.run_user or APACHE_DEFAULT_USER
        return _setting(SYSTEM_APACHE_ENVVARS, r"^\s*export\s+APACHE_RUN_USER=(\S+)") or APACHE_DEFAULT_USER
    if options.server == "nginx":
        main = Layout(options.directory, "nginx").main if options.standalone else SYSTEM_NGINX_CONF
        return _setting(main, r"^\s*user\s+([^\s;]+)") or (NGINX_DEFAULT_USER if options.standalone
                                                           else "www-data")
    return "root"   # haproxy reads every file before it drops privileges


def _setting(path: Path, pattern: str) -> str | None:
    try:
        match = re.search(pattern, path.read_text(errors="replace"), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def denied(path: Path, reader: Reader, need: int) -> str | None:
    """Why ``reader`` cannot open ``path`` (each parent needs search, the path ``need``), or None."""
    if reader.uid == 0:
        return None
    path = Path(os.path.abspath(path))
    for parent in reversed(path.parents):
        reason = _lacks(parent, reader, SEARCH)
        if reason:
            return reason
    return _lacks(path, reader, need)


def _lacks(path: Path, reader: Reader, need: int) -> str | None:
    try:
        st = path.stat()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if st.st_uid == reader.uid:
        granted = (st.st_mode >> 6) & 0o7
    elif st.st_gid in reader.gids:
        granted = (st.st_mode >> 3) & 0o7
    else:
        granted = st.st_mode & 0o7
    if granted & need:
        return None
    return f"{path} is mode {stat.S_IMODE(st.st_mode):04o} owned by {_owner(st)}"


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"
