"""``Choice``: a str-Enum of the words a user may type for an option. Pure.

Subclasses name what they are (``what``) for the error message and may replace the
default hint. A parse that accepts aliases (``RevocationReason.parse``) keeps its own.
"""

from __future__ import annotations

import enum

from mtlskit.errors import BadInput


class Choice(str, enum.Enum):
    """Base of the option enums whose value is the CLI word, matched case-insensitively.

    Subclasses set ``what = enum.nonmember("key type")`` and may set
    ``hint = enum.nonmember("...")``; the default hint lists every value.
    """

    @classmethod
    def parse(cls, text: str):
        """The member whose value is ``text`` in lower case.

        Raises:
            BadInput: "unknown <what> '<text>'", with a hint naming the valid words.
        """
        try:
            return cls(text.lower())
        except ValueError:
            hint = getattr(cls, "hint", None) or f"choose one of: {', '.join(c.value for c in cls)}"
            raise BadInput(f"unknown {cls.what} {text!r}", hint=hint) from None
