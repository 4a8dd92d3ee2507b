"""Subject fields users know: C, ST, L, O, OU (the CN is the NAME), validated once.

``SubjectOptions`` is what `init`, `issue`, `sign` and `token create` share: the option
values as typed, checked by :meth:`SubjectOptions.parse`, merged over the defaults of
``mtlskit.toml``'s ``[subject]`` table, and turned into name attributes in the order the
guides use (C, ST, L, O, OU, then CN).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.pki import names

# The options as typed, in RDN order; the keys of ``[subject]`` in mtlskit.toml.
FIELDS = ("country", "state", "locality", "org", "org_unit")


@dataclasses.dataclass(frozen=True)
class SubjectOptions:
    """C, ST, L, O and OU of a subject; ``None`` means absent. Build with :meth:`parse`."""

    country: str | None = None
    state: str | None = None
    locality: str | None = None
    org: str | None = None
    org_unit: str | None = None

    @classmethod
    def parse(cls, *, country: str | None = None, state: str | None = None, locality: str | None = None,
              org: str | None = None, org_unit: str | None = None,
              source: str = "option") -> "SubjectOptions":
        """Check each value (see ``names.subject_field``); the country is upper-cased.

        Raises:
            BadInput: a value outside its rule; the message names the option (``--org``)
                or, with ``source="[subject]"``, the setting.
        """
        given = {"country": country, "state": state, "locality": locality, "org": org, "org_unit": org_unit}
        return cls(**{field: None if value is None else names.subject_field(field, value, source)
                      for field, value in given.items()})

    @classmethod
    def from_mapping(cls, values: Mapping[str, str | None], source: str = "option") -> "SubjectOptions":
        """``parse`` of a mapping with keys among ``FIELDS`` (a ``[subject]`` table, a batch row)."""
        return cls.parse(**{field: values.get(field) for field in FIELDS}, source=source)

    def over(self, defaults: "SubjectOptions") -> "SubjectOptions":
        """These values, with ``defaults`` filling the fields not given here. An empty
        string given here clears a default (``--org ''``)."""
        return SubjectOptions(**{field: _pick(getattr(self, field), getattr(defaults, field))
                                 for field in FIELDS})

    @property
    def empty(self) -> bool:
        return not any(getattr(self, field) for field in FIELDS)

    def attributes(self) -> list[x509.NameAttribute]:
        """The name attributes, C, ST, L, O, OU, of the fields that are set."""
        return names.subject_attributes(self.country, self.state, self.locality, self.org, self.org_unit)

    def as_dict(self) -> dict[str, str]:
        """The fields that are set (for JSON and mtlskit.toml)."""
        return {field: getattr(self, field) for field in FIELDS if getattr(self, field)}


def defaults_of(settings) -> SubjectOptions:
    """The ``[subject]`` defaults of a CA home's settings (``config.Settings.subject``), checked.

    Raises:
        BadInput: a value outside its rule; the message names ``[subject] key``.
    """
    return SubjectOptions.from_mapping(dict(settings.subject), source="[subject]")


def _pick(given: str | None, default: str | None) -> str | None:
    if given is None:
        return default
    return given or None


_FIELD_OF_OID = {oid: field for field, oid in names.SUBJECT_OID.items()}


def requested_fields(subject: x509.Name) -> tuple[SubjectOptions, list[str]]:
    """The C, ST, L, O and OU of a subject written by someone else (a CSR), and what is
    left out: every other attribute (emailAddress, serialNumber, DC, UID, ...) and a second
    value of a field, as ``type=value`` text for a warning line. The CN is the NAME's
    business (issue/csr.py): neither kept here nor reported.

    Raises:
        BadInput: a C, ST, L, O or OU value outside the rules of the options (a country
            that is not two letters, a control character, too long).
    """
    kept: dict[str, str] = {}
    dropped: list[str] = []
    seen_cn = False
    for attribute in subject:   # RDNs in order, each RDN's attributes in order
        field = _FIELD_OF_OID.get(attribute.oid)
        if attribute.oid == NameOID.COMMON_NAME and not seen_cn:
            seen_cn = True
        elif field is not None and field not in kept:
            value = attribute.value if isinstance(attribute.value, str) else ""
            kept[field] = names.subject_field(field, value, "CSR")
        else:
            dropped.append(names.shown(attribute.rfc4514_string(), 60))
    return SubjectOptions.from_mapping(kept, source="CSR"), dropped
