"""Apple configuration profiles (``.mobileconfig``) carrying a client identity (pure).

One profile, two payloads (Apple's "Configuration Profile Reference"):

- ``com.apple.security.pkcs12``: the identity (key, certificate, chain) as a PKCS#12 in the
  *legacy* profile (3DES + SHA-1 MAC): iOS and macOS refuse PBES2/AES bundles;
- ``com.apple.security.root``: the root CA certificate (DER), so that the chain the
  identity presents is trusted on the device.

The PKCS#12 password is not written into the profile unless asked (``embed_password``):
an unsigned profile with its password inside is the identity in clear for whoever gets the
file; without it, the device asks for the password on installation.
"""

from __future__ import annotations

import plistlib
import uuid
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.errors import BadInput
from mtlskit.pki.pkcs12 import P12Profile, build_pkcs12

MEDIA_TYPE = "application/x-apple-aspen-config"
PKCS12_PAYLOAD = "com.apple.security.pkcs12"
ROOT_PAYLOAD = "com.apple.security.root"
_IDENTIFIER = "org.mtlskit.identity"


def build_mobileconfig(name: str, private_key, certificate: x509.Certificate, chain: list[x509.Certificate],
                       root: x509.Certificate, password: bytes, organization: str = "mtlskit",
                       embed_password: bool = False,
                       new_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> bytes:
    """The XML plist of a profile installing ``certificate`` (with its key and chain) and ``root``.

    Args:
        name: the certificate's NAME (profile display name and PKCS#12 friendly name).
        chain: the intermediates between certificate and root (the root excluded).
        password: protects the PKCS#12 payload.
        embed_password: write the password into the payload (installs without asking).
        new_uuid: source of payload UUIDs (fixed in tests).

    Raises:
        BadInput: an empty password.
    """
    if not password:
        raise BadInput("a .mobileconfig identity needs a non-empty password")
    p12 = build_pkcs12(name, private_key, certificate, chain, password, P12Profile.LEGACY)
    identity = _payload(PKCS12_PAYLOAD, f"{name} (client certificate)", f"{_IDENTIFIER}.{name}.pkcs12",
                        p12, f"{name}.p12", new_uuid())
    if embed_password:
        identity["Password"] = password.decode()
    root_name = _common_name(root) or "root"
    trust = _payload(ROOT_PAYLOAD, root_name, f"{_IDENTIFIER}.{name}.root",
                     root.public_bytes(serialization.Encoding.DER), f"{root_name}.cer", new_uuid())
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1, "PayloadUUID": str(new_uuid()).upper(),
        "PayloadIdentifier": f"{_IDENTIFIER}.{name}", "PayloadDisplayName": f"{name} ({organization})",
        "PayloadDescription": f"Client certificate {name} and the {root_name} certificate authority.",
        "PayloadOrganization": organization, "PayloadRemovalDisallowed": False,
        "PayloadContent": [identity, trust],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def _payload(kind: str, display: str, identifier: str, content: bytes, file_name: str, payload_uuid) -> dict:
    return {"PayloadType": kind, "PayloadVersion": 1, "PayloadUUID": str(payload_uuid).upper(),
            "PayloadIdentifier": identifier, "PayloadDisplayName": display,
            "PayloadCertificateFileName": file_name, "PayloadContent": content}


def _common_name(certificate: x509.Certificate) -> str | None:
    from mtlskit.pki.names import common_name_of

    return common_name_of(certificate.subject)
