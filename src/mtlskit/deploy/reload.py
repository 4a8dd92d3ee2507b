"""Apply new files to a running server, and never start one.

A deployment's reload command is one of:

- ``signal:SIG:PROGRAM:PIDFILE`` (what ``deploy`` records): send SIG to the server whose
  PID is in PIDFILE, when that process is alive and is PROGRAM. Nginx re-reads its
  configuration and CRL on HUP; Apache does a graceful restart on USR1 (the signal
  ``apache2 -k graceful`` sends, without its habit of starting an Apache that is not
  running). No live process: nothing to reload, which is not a failure.
- ``socket:PATH``: push the new files through HAProxy's admin socket, applied to new
  handshakes without a restart (a restart refuses connections while HAProxy is down):
  the CRL bundle (``set ssl crl-file`` + ``commit ssl crl-file``, HAProxy >= 2.5), the
  client-CA bundle (``set ssl ca-file`` + ``commit ssl ca-file``, >= 2.5); a new server
  certificate or configuration is applied by a seamless reload of the master process
  (USR2 to the PID in its pidfile, see ``haproxy_reload_master``); when nothing answers
  on PATH, HAProxy is not running.
- anything else: the user's ``--reload`` command, an argv line run without a shell.

Every child gets the environment without any ``MTLSKIT_*`` variable and without
``PGPASSWORD`` (the CA passphrase and the database password must never reach a reload or
config-test command).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shlex
import signal
import socket
import subprocess
from pathlib import Path

SOCKET_PREFIX = "socket:"
SIGNAL_PREFIX = "signal:"
#: the names a server's processes carry in /proc/PID/comm
PROGRAMS = {"nginx": ("nginx",), "apache2": ("apache2", "httpd"), "haproxy": ("haproxy",)}
PIDFILE_LIMIT = 64


@dataclasses.dataclass(frozen=True)
class SocketUpdate:
    """What changed beside the CRL, that a running HAProxy takes through its admin socket.

    ``certificate``: the ``crt`` path as the configuration names it, and the new chain
    followed by its key (one payload, one commit). ``ca_file``: the ``ca-file`` path and
    the new client-CA bundle.
    """

    certificate: tuple[Path, bytes] | None = None
    ca_file: tuple[Path, bytes] | None = None
    master_pidfile: Path | None = None


@dataclasses.dataclass(frozen=True)
class ReloadResult:
    """``running`` is False when no server was running: the files wait for its start."""

    ok: bool
    message: str
    running: bool = True


SECRET_VARIABLES = ("PGPASSWORD",)   # libpq's password, which psycopg takes for the inventory


def child_environment() -> dict[str, str]:
    """This process's environment without any ``MTLSKIT_*`` variable (secrets live there)
    nor libpq's ``PGPASSWORD`` (the inventory's database password)."""
    return {name: value for name, value in os.environ.items()
            if not name.upper().startswith("MTLSKIT_") and name.upper() not in SECRET_VARIABLES}


def signal_command(signame: str, program: str, pidfile: Path) -> str:
    """The recorded form of "send SIGNAME to the live PROGRAM whose PID is in PIDFILE"."""
    return f"{SIGNAL_PREFIX}{signame}:{program}:{pidfile}"


def run_reload(command: str, crl_path: Path, crl_pem: bytes, timeout: float = 30,
               serial_list: tuple[Path, list[str]] | None = None,
               config_changed: bool = False, socket_update: SocketUpdate | None = None) -> ReloadResult:
    """Apply a deployment's new files to its running server (see the module docstring).

    ``serial_list`` (HAProxy): the revoked-serials ACL file and its new patterns, replaced
    through the socket after the CRL. ``config_changed``: a file changed that an admin
    socket cannot apply (the configuration itself). ``socket_update`` (HAProxy): a new
    server certificate or client-CA bundle, committed through the socket after the CRL.
    """
    if command.startswith(SIGNAL_PREFIX):
        return _signal(command[len(SIGNAL_PREFIX):])
    if command.startswith(SOCKET_PREFIX):
        return _through_socket(Path(command[len(SOCKET_PREFIX):]), crl_path, crl_pem, timeout,
                               serial_list, config_changed, socket_update or SocketUpdate())
    return _run_command(command, timeout)


def is_running(command: str) -> bool | None:
    """Whether the server a recorded reload applies to runs (None: a user command, unknown)."""
    if command.startswith(SIGNAL_PREFIX):
        parts = command[len(SIGNAL_PREFIX):].split(":", 2)
        return len(parts) == 3 and running_pid(Path(parts[2]), parts[1]) is not None
    if command.startswith(SOCKET_PREFIX):
        return _answers(Path(command[len(SOCKET_PREFIX):]), timeout=5)
    return None


def _signal(spec: str) -> ReloadResult:
    try:
        signame, program, pidfile = spec.split(":", 2)
        signum = signal.Signals[f"SIG{signame}"]
    except (ValueError, KeyError):
        return ReloadResult(False, f"reload 'signal:{spec}' is not signal:SIG:PROGRAM:PIDFILE")
    pid = running_pid(Path(pidfile), program)
    if pid is None:
        return ReloadResult(True, f"no live {program} in {pidfile}; the new files apply when it starts",
                            running=False)
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return ReloadResult(True, f"{program} {pid} just exited; the new files apply when it starts",
                            running=False)
    except PermissionError:
        return ReloadResult(False, f"cannot signal {program} (pid {pid} from {pidfile}): permission denied")
    return ReloadResult(True, f"sent {signum.name} to {program} (pid {pid} from {pidfile})")


def running_pid(pidfile: Path, program: str) -> int | None:
    """The PID in ``pidfile`` when that process is alive and is ``program``; else None.

    A pidfile outlives a server that crashed, and its PID may since belong to another
    process: that one must not get the signal (HUP or USR1 kill most programs).
    """
    try:
        with open(pidfile, "rb") as handle:
            text = handle.read(PIDFILE_LIMIT).strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) <= 1:
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass                       # alive, someone else's: the signal will say so
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():              # Linux: a zombie, or another program under a recycled PID
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            name = (proc / "comm").read_text().strip()
        except (OSError, IndexError):
            return None
        if state == "Z" or name not in PROGRAMS.get(program, (program,)):
            return None
    return pid


def _through_socket(admin_socket: Path, crl_path: Path, crl_pem: bytes, timeout: float,
                    serial_list: tuple[Path, list[str]] | None, config_changed: bool,
                    update: SocketUpdate) -> ReloadResult:
    if not _answers(admin_socket, timeout):
        return ReloadResult(True, f"nothing answers on {admin_socket}: no HAProxy runs there, or its "
                                  f"configuration has no 'stats socket {admin_socket} level admin'; the new "
                                  f"files apply when HAProxy (re)starts", running=False)
    if not crl_pem:               # a deployment without a CRL (revocation ocsp or none)
        outcome = ReloadResult(True, f"HAProxy answers on {admin_socket}")
    else:
        outcome = haproxy_update_crl(admin_socket, crl_path, crl_pem, timeout)
    if outcome.ok and serial_list is not None:
        listed = haproxy_replace_acl(admin_socket, serial_list[0], serial_list[1], timeout)
        joint = "; " if listed.ok else "; but "
        outcome = ReloadResult(True, f"{outcome.message}{joint}{listed.message}")
    if outcome.ok and update.ca_file is not None and update.certificate is None:
        step = haproxy_commit(admin_socket, "ca-file", update.ca_file[0], update.ca_file[1], timeout)
        outcome = ReloadResult(step.ok, f"{outcome.message}; {step.message}")
    if outcome.ok and (update.certificate is not None or config_changed):
        step = haproxy_reload_master(update.master_pidfile,
                                     "configuration" if config_changed else "certificate")
        outcome = ReloadResult(step.ok, f"{outcome.message}; {step.message}")
    return outcome


def haproxy_reload_master(master_pidfile: Path | None, what: str = "certificate") -> ReloadResult:
    """Serve a new server certificate or configuration: USR2 to HAProxy's master.

    The master starts a new worker that loads every file again and takes the listening
    sockets over; the old worker finishes its connections: no connection is refused. A
    certificate does not go through ``set/commit ssl cert`` on the admin socket:
    HAProxy 2.6.12 (Debian 12) then crashes on the next ``commit ssl crl-file`` once a
    CRL was committed before the certificate (a ckch instance left pointing at the freed
    certificate, haproxy#3165, fixed upstream by 7482b6e in Oct 2025): one renewal would
    turn the next revocation into an outage.
    """
    pid = running_pid(master_pidfile, "haproxy") if master_pidfile else None
    if pid is None:
        return ReloadResult(False, f"no HAProxy master in {master_pidfile}: HAProxy keeps the old {what} until "
                                   f"it is reloaded; run it in master-worker mode (-W, or 'master-worker' and "
                                   f"'pidfile {master_pidfile}' in its global section) and run this again, "
                                   f"or restart it")
    try:
        os.kill(pid, signal.SIGUSR2)
    except OSError as exc:
        return ReloadResult(False, f"cannot signal the HAProxy master (pid {pid} from {master_pidfile}): "
                                   f"{exc.strerror or exc}")
    return ReloadResult(True, f"sent USR2 to the HAProxy master (pid {pid} from {master_pidfile}): "
                              f"a new worker serves the new {what}")


def _answers(admin_socket: Path, timeout: float) -> bool:
    """Whether a process listens on ``admin_socket`` (absent or refused: none does)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(admin_socket))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                return False
            return True            # something is there; the command will report what fails
    return True


def _run_command(command: str, timeout: float) -> ReloadResult:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return ReloadResult(False, f"reload command {command!r} cannot be parsed: {exc}")
    if not argv:
        return ReloadResult(False, "empty reload command")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=child_environment(), stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return ReloadResult(False, f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return ReloadResult(False, f"{command!r} timed out after {timeout:g}s")
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return ReloadResult(False, f"{command!r} exited with {proc.returncode}: {output[-500:]}")
    return ReloadResult(True, f"ran {command!r}")


def haproxy_update_crl(admin_socket: Path, crl_path: Path, crl_pem: bytes,
                       timeout: float = 30) -> ReloadResult:
    """Replace a loaded crl-file in a running HAProxy through its admin socket."""
    return haproxy_commit(admin_socket, "crl-file", crl_path, crl_pem, timeout)


#: what each kind of payload is called in messages
_PAYLOAD_NAMES = {"crl-file": "the CRL", "ca-file": "the client-CA bundle", "cert": "the server certificate"}


def haproxy_commit(admin_socket: Path, kind: str, path: Path, pem: bytes, timeout: float = 30) -> ReloadResult:
    """Replace a loaded ``crl-file``, ``ca-file`` or ``cert`` in a running HAProxy.

    HAProxy management guide, "set ssl <kind> <file> <payload>" and "commit ssl <kind>
    <file>": the first opens a transaction with the new content (a payload ends at the
    first empty line, so blank lines are dropped), the second swaps it in for new
    handshakes; connections already open keep what they negotiated. A refused payload
    (a key that does not match its certificate) is aborted and the old one stays.
    """
    what, name = _PAYLOAD_NAMES[kind], str(path).encode()
    payload = b"\n".join(line for line in pem.splitlines() if line.strip())
    try:
        answer = haproxy_admin(admin_socket, b"set ssl %s %s <<\n%s\n\n" % (kind.encode(), name, payload), timeout)
        if "transaction" not in answer.lower() or "error" in answer.lower():
            _admin_quiet(admin_socket, b"abort ssl %s %s\n" % (kind.encode(), name), timeout)
            return ReloadResult(False, f"haproxy refused {what}: {' '.join(answer.split())[:300]}")
        answer = haproxy_admin(admin_socket, b"commit ssl %s %s\n" % (kind.encode(), name), timeout)
    except OSError as exc:
        return ReloadResult(False, f"haproxy admin socket {admin_socket}: {exc.strerror or exc}")
    if "Success" not in answer:
        _admin_quiet(admin_socket, b"abort ssl %s %s\n" % (kind.encode(), name), timeout)
        return ReloadResult(False, f"haproxy did not commit {what}: {' '.join(answer.split())[:300]}")
    return ReloadResult(True, f"committed {path} through {admin_socket}")


def haproxy_replace_acl(admin_socket: Path, acl_path: Path, patterns: list[str],
                        timeout: float = 30, batch: int = 200) -> ReloadResult:
    """Replace every pattern of a file-backed ACL atomically (HAProxy >= 2.4):
    ``prepare acl`` gives a new version, ``add acl @VER`` fills it, ``commit acl @VER`` swaps it in."""
    name = str(acl_path)
    try:
        answer = haproxy_admin(admin_socket, f"prepare acl {name}\n".encode(), timeout)
        version = answer.split(":")[-1].strip() if "New version created" in answer else None
        if not version or not version.isdigit():
            return ReloadResult(False, f"haproxy did not prepare the ACL {name}: {answer.strip()}")
        for start in range(0, len(patterns), batch):
            chunk = ";".join(f"add acl @{version} {name} {p}" for p in patterns[start:start + batch])
            answer = haproxy_admin(admin_socket, (chunk + "\n").encode(), timeout)
            if answer.strip():
                return ReloadResult(False, f"haproxy refused a revoked serial: {answer.strip()[:200]}")
        answer = haproxy_admin(admin_socket, f"commit acl @{version} {name}\n".encode(), timeout)
    except OSError as exc:
        return ReloadResult(False, f"haproxy admin socket {admin_socket}: {exc.strerror or exc}")
    if answer.strip():
        return ReloadResult(False, f"haproxy did not commit the ACL {name}: {answer.strip()}")
    return ReloadResult(True, f"{len(patterns)} revoked serial(s) checked per request")


def haproxy_admin(path: Path, command: bytes, timeout: float) -> str:
    """Send one command on a fresh connection (non-interactive mode) and read the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(command)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _admin_quiet(path: Path, command: bytes, timeout: float) -> None:
    try:
        haproxy_admin(path, command, timeout)
    except OSError:
        pass
