"""Apply a new CRL to a running server: a reload command, or HAProxy's admin socket.

A deployment's reload command is either an argv line (``nginx -s reload``,
``apache2ctl graceful``; run without a shell) or ``socket:PATH``: push the CRL bundle
through HAProxy's admin socket (``set ssl crl-file`` then ``commit ssl crl-file``,
HAProxy >= 2.5), which applies it to new handshakes without a reload.
"""

from __future__ import annotations

import dataclasses
import shlex
import socket
import subprocess
from pathlib import Path

SOCKET_PREFIX = "socket:"


@dataclasses.dataclass(frozen=True)
class ReloadResult:
    ok: bool
    message: str


def run_reload(command: str, crl_path: Path, crl_pem: bytes, timeout: float = 30,
               serial_list: tuple[Path, list[str]] | None = None) -> ReloadResult:
    """Run a deployment's reload command after its CRL file changed.

    ``serial_list`` (HAProxy): the revoked-serials ACL file and its new patterns, replaced
    through the socket after the CRL.
    """
    if command.startswith(SOCKET_PREFIX):
        admin_socket = Path(command[len(SOCKET_PREFIX):])
        outcome = haproxy_update_crl(admin_socket, crl_path, crl_pem, timeout)
        if not outcome.ok or serial_list is None:
            return outcome
        listed = haproxy_replace_acl(admin_socket, serial_list[0], serial_list[1], timeout)
        if not listed.ok:
            return ReloadResult(True, f"{outcome.message}; but {listed.message}")
        return ReloadResult(True, f"{outcome.message}; {listed.message}")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return ReloadResult(False, f"reload command {command!r} cannot be parsed: {exc}")
    if not argv:
        return ReloadResult(False, "empty reload command")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
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
    """Replace a loaded crl-file in a running HAProxy through its admin socket.

    HAProxy management guide, "set ssl crl-file <crlfile> <payload>" and
    "commit ssl crl-file <crlfile>": the first opens a transaction with the new
    content (a payload ends at the first empty line), the second swaps it in.
    """
    payload = b"\n".join(line for line in crl_pem.splitlines() if line.strip())
    try:
        answer = _admin(admin_socket, b"set ssl crl-file %s <<\n%s\n\n" % (str(crl_path).encode(), payload), timeout)
        if "transaction" not in answer.lower() or "error" in answer.lower():
            return ReloadResult(False, f"haproxy refused the CRL: {answer.strip()}")
        answer = _admin(admin_socket, b"commit ssl crl-file %s\n" % str(crl_path).encode(), timeout)
    except OSError as exc:
        return ReloadResult(False, f"haproxy admin socket {admin_socket}: {exc.strerror or exc}")
    if "Success" not in answer:
        _admin_quiet(admin_socket, b"abort ssl crl-file %s\n" % str(crl_path).encode(), timeout)
        return ReloadResult(False, f"haproxy did not commit the CRL: {answer.strip()}")
    return ReloadResult(True, f"committed {crl_path} through {admin_socket}")


def haproxy_replace_acl(admin_socket: Path, acl_path: Path, patterns: list[str],
                        timeout: float = 30, batch: int = 200) -> ReloadResult:
    """Replace every pattern of a file-backed ACL atomically (HAProxy >= 2.4):
    ``prepare acl`` gives a new version, ``add acl @VER`` fills it, ``commit acl @VER`` swaps it in."""
    name = str(acl_path)
    try:
        answer = _admin(admin_socket, f"prepare acl {name}\n".encode(), timeout)
        version = answer.split(":")[-1].strip() if "New version created" in answer else None
        if not version or not version.isdigit():
            return ReloadResult(False, f"haproxy did not prepare the ACL {name}: {answer.strip()}")
        for start in range(0, len(patterns), batch):
            chunk = ";".join(f"add acl @{version} {name} {p}" for p in patterns[start:start + batch])
            answer = _admin(admin_socket, (chunk + "\n").encode(), timeout)
            if answer.strip():
                return ReloadResult(False, f"haproxy refused a revoked serial: {answer.strip()[:200]}")
        answer = _admin(admin_socket, f"commit acl @{version} {name}\n".encode(), timeout)
    except OSError as exc:
        return ReloadResult(False, f"haproxy admin socket {admin_socket}: {exc.strerror or exc}")
    if answer.strip():
        return ReloadResult(False, f"haproxy did not commit the ACL {name}: {answer.strip()}")
    return ReloadResult(True, f"{len(patterns)} revoked serial(s) checked per request")


def _admin(path: Path, command: bytes, timeout: float) -> str:
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
        _admin(path, command, timeout)
    except OSError:
        pass
