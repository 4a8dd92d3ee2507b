"""One exception tree for the whole of mtlskit.

    MtlskitError                 code            exit
    ├── UsageError               usage           2   bad flags or arguments
    ├── BadInput                 bad-input       2   a file or value that cannot be read or parsed
    │   ├── WrongPassphrase      wrong-passphrase 2
    │   └── KeyOffline           key-offline     2   a CA key kept off this machine is needed
    ├── NotFound                 not-found       3
    ├── PolicyViolation          policy          4   refused by issuance or revocation policy
    │   ├── AlreadyExists        already-exists  4
    │   ├── AlreadyRevoked       already-revoked 4
    │   └── Ambiguous            ambiguous       4
    │       └── AmbiguousTarget  ambiguous-target 2  a bare SERIAL|NAME that is both
    ├── CheckFailed              check-failed    1   verify/probe found a problem
    ├── Interrupted              interrupted     130 a batch stopped on request (SIGINT, SIGTERM)
    └── InternalError            internal        5

Domain code raises these; only ``cli/`` maps them to exit codes and only ``api/`` to
HTTP statuses. Messages never contain secrets.
"""

from __future__ import annotations


class MtlskitError(Exception):
    """Base of every error mtlskit raises on purpose.

    Args:
        message: one sentence for a human, saying what was wrong.
        hint: optional sentence saying what to do about it.
    """

    code = "error"
    exit_code = 5

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(MtlskitError):
    code = "usage"
    exit_code = 2


class BadInput(MtlskitError):
    code = "bad-input"
    exit_code = 2


class WrongPassphrase(BadInput):
    code = "wrong-passphrase"


class KeyOffline(BadInput):
    code = "key-offline"


class NotFound(MtlskitError):
    code = "not-found"
    exit_code = 3


class PolicyViolation(MtlskitError):
    code = "policy"
    exit_code = 4


class AlreadyExists(PolicyViolation):
    code = "already-exists"


class AlreadyRevoked(PolicyViolation):
    code = "already-revoked"


class Ambiguous(PolicyViolation):
    code = "ambiguous"


class AmbiguousTarget(Ambiguous):
    """A bare argument that is both a NAME and the serial of another certificate: a
    usage error (say ``name:`` or ``serial:``), not a policy refusal."""

    code = "ambiguous-target"
    exit_code = 2


class CheckFailed(MtlskitError):
    code = "check-failed"
    exit_code = 1


class Interrupted(MtlskitError):
    """A batch stopped on request; `records` were issued (recorded and in place), the
    other `total - len(records)` were not (nothing of them is left)."""

    code = "interrupted"
    exit_code = 130

    def __init__(self, message: str, records: list, total: int) -> None:
        super().__init__(message)
        self.records = records
        self.total = total


class InternalError(MtlskitError):
    code = "internal"
    exit_code = 5
