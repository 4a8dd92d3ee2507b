"""Swap two directories in one step: renameat2(2) with RENAME_EXCHANGE (Linux 3.15+).

Where the call or the filesystem does not support it, each file of the staged directory
replaces its namesake in the live one by rename(2), and the live directory's files go back
the other way, so the caller's clean-up is the same either way.
"""

from __future__ import annotations

import ctypes
import errno
import os

AT_FDCWD = -100
RENAME_EXCHANGE = 1 << 1

_renameat2 = None


def _function():
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        except (OSError, AttributeError):
            _renameat2 = False
    return _renameat2


def exchange(staged: str, live: str) -> None:
    """Afterwards ``live`` holds what ``staged`` held, and ``staged`` what ``live`` held."""
    function = _function()
    if function:
        if function(AT_FDCWD, os.fsencode(staged), AT_FDCWD, os.fsencode(live), RENAME_EXCHANGE) == 0:
            return
        error = ctypes.get_errno()
        if error not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(error, os.strerror(error), live)
    _exchange_files(staged, live)


def _exchange_files(staged: str, live: str) -> None:
    """The fallback: file by file (each rename atomic, the set not)."""
    old_names = set(os.listdir(live))
    new_names = os.listdir(staged)
    for name in old_names - set(new_names):
        os.rename(os.path.join(live, name), os.path.join(staged, name + ".old-set"))
    for name in new_names:
        os.replace(os.path.join(staged, name), os.path.join(live, name))
