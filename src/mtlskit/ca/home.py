"""The CA's files in the home directory: certificates in PEM, keys as encrypted PKCS#8.

    HOME/ca/root.pem               HOME/ca/root.key.pem          (0600, encrypted; may be
                                                                  kept off the machine)
    HOME/ca/intermediate.pem       HOME/ca/intermediate.key.pem  (absent with --no-intermediate)
    HOME/ca/intermediate-2.pem     HOME/ca/intermediate-2.key.pem  (after `rotate intermediate`)

The CA names are the file names; the registry (``CaRegistry``) lists the CAs present and
says which one issues: the intermediate of the highest generation (the root without one).
The older intermediates keep signing the CRLs and OCSP responders of what they issued.

PKCS#11 (`init --pkcs11-module ...`): a CA whose key is in a token has, instead of its
key file, ``HOME/ca/<name>.pkcs11.json`` (:class:`mtlskit.ca.pkcs11.KeyReference`: module,
token label, key label and id, key type, the PIN file's path; never the PIN).

Offline root: issuing, revoking and the intermediates' CRLs need only the issuing key.
The root key is read when something signs with it (its CRL, a new intermediate); when
``root.key.pem`` is absent, that fails with ``KeyOffline`` saying how to bring it back.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mtlskit.errors import AlreadyExists, BadInput, KeyOffline, NotFound, WrongPassphrase
from mtlskit.fileio import PRIVATE, PUBLIC, make_private_dir, write_atomic

if TYPE_CHECKING:  # imported where used: `list` and `show` never load cryptography (issue 12)
    from cryptography import x509

    from mtlskit.ca.authority import Authority
    from mtlskit.ca.signer import Signer

ROOT = "root"
_INTERMEDIATE = re.compile(r"intermediate(?:-([2-9]|[1-9][0-9]{1,3}))?\Z")
#: the CA names of a fresh home, root first (later intermediates: see ``intermediate_name``)
CA_NAMES = (ROOT, "intermediate")


def intermediate_name(generation: int) -> str:
    """"intermediate" for the first, "intermediate-N" for the Nth (N >= 2)."""
    return "intermediate" if generation == 1 else f"intermediate-{generation}"


def generation_of(name: str) -> int | None:
    """The generation of an intermediate's CA name; None for any other name."""
    match = _INTERMEDIATE.match(name)
    if match is None:
        return None
    return int(match.group(1) or 1)


def is_ca_name(name: str) -> bool:
    return name == ROOT or generation_of(name) is not None


@dataclasses.dataclass(frozen=True)
class CaRegistry:
    """The CAs of a home by name: root first, then the intermediates, oldest first."""

    names: tuple[str, ...]

    @property
    def issuing(self) -> str:
        """The CA that signs new leaves: the newest intermediate (the root without one)."""
        return self.names[-1]

    @property
    def intermediates(self) -> tuple[str, ...]:
        return tuple(name for name in self.names if name != ROOT)

    @property
    def retired(self) -> tuple[str, ...]:
        """Intermediates replaced by a newer one: they publish revocation, never issue."""
        return self.intermediates[:-1]

    def next_intermediate(self) -> str:
        generations = [generation_of(name) or 0 for name in self.intermediates]
        return intermediate_name(max(generations, default=0) + 1)


def root_offline_hint(key_path: Path) -> str:
    return (f"bring the root key back with `mtlskit root import-key FILE` "
            f"(it goes to {key_path}), run the command again, then export it again")


class CaFiles:
    def __init__(self, ca_dir: Path) -> None:
        self.ca_dir = ca_dir

    def certificate_path(self, name: str) -> Path:
        return self.ca_dir / f"{name}.pem"

    def key_path(self, name: str) -> Path:
        return self.ca_dir / f"{name}.key.pem"

    def reference_path(self, name: str) -> Path:
        """Where the home records that the CA's key is in a PKCS#11 token (no key file then)."""
        return self.ca_dir / f"{name}.pkcs11.json"

    def in_token(self, name: str) -> bool:
        return self.reference_path(name).exists()

    def token_reference(self, name: str):
        """The ``ca.pkcs11.KeyReference`` of the CA's key; None when it is a file key."""
        path = self.reference_path(name)
        if not path.exists():
            return None
        from mtlskit.ca.pkcs11 import KeyReference
        from mtlskit.fileio import read_input

        return KeyReference.from_json(read_input(path), str(path))

    def key_is_encrypted(self, name: str) -> bool:
        """Whether the CA's key file is encrypted (False for a key in a token)."""
        path = self.key_path(name)
        return path.exists() and b"ENCRYPTED" in path.read_bytes()[:64]

    def exists(self) -> bool:
        return self.certificate_path(ROOT).exists()

    def has_key(self, name: str) -> bool:
        return self.key_path(name).exists() or self.in_token(name)

    def require(self) -> None:
        if not self.exists():
            raise NotFound(f"no CA in {self.ca_dir.parent}",
                           hint="create one with `mtlskit init`, or point --home / MTLSKIT_HOME at it")

    def registry(self) -> CaRegistry:
        """The CAs present (a certificate file with a CA name), root first."""
        self.require()
        found = [path.name[:-len(".pem")] for path in self.ca_dir.glob("*.pem")
                 if not path.name.endswith(".key.pem")]
        intermediates = sorted((name for name in found if generation_of(name) is not None),
                               key=generation_of)
        return CaRegistry((ROOT, *intermediates))

    def save(self, authority: Authority, passphrase: bytes | None) -> None:
        """Write keys first (0600, encrypted unless passphrase is None), then certificates.

        The root certificate is written last: its presence is what marks a CA as existing.
        """
        if self.exists():
            raise AlreadyExists(f"a CA already exists in {self.ca_dir.parent}",
                                hint="use another --home, or remove that directory yourself")
        make_private_dir(self.ca_dir)
        signers = [authority.issuing, authority.root] if authority.issuing is not authority.root \
            else [authority.root]
        for signer in signers:
            self.save_signer(signer, passphrase)

    def save_signer(self, signer: Signer, passphrase: bytes | None) -> None:
        """Write one CA: its key (0600) first, then its certificate (which makes it present).
        A key in a PKCS#11 token stays there: the home records where it is (0600)."""
        from cryptography.hazmat.primitives import serialization

        if self.certificate_path(signer.name).exists() and signer.name != ROOT:
            raise AlreadyExists(f"a CA named {signer.name} already exists in {self.ca_dir.parent}")
        reference = signer.token_reference
        if reference is not None:
            write_atomic(self.reference_path(signer.name), reference.to_json(), PRIVATE)
        else:
            write_atomic(self.key_path(signer.name), signer.private_key_pem(passphrase), PRIVATE)
        pem = signer.certificate.public_bytes(serialization.Encoding.PEM)
        write_atomic(self.certificate_path(signer.name), pem, PUBLIC)

    def certificates(self) -> dict[str, x509.Certificate]:
        """The CA certificates present, root first; no passphrase needed."""
        from cryptography import x509

        return {name: x509.load_pem_x509_certificate(self.certificate_path(name).read_bytes())
                for name in self.registry().names}

    def load(self, passphrase_source: Callable[[], bytes | None]) -> Authority:
        """The CAs with their keys: the issuing CA's key is decrypted now (a wrong
        passphrase shows at once), the others when something signs with them.

        Raises:
            WrongPassphrase: the passphrase does not open the issuing key (or none was given).
            KeyOffline: the issuing CA's key is not on this machine.
        """
        from cryptography import x509

        from mtlskit.ca.authority import Authority
        from mtlskit.ca.signer import DeferredKey, Signer

        registry = self.registry()
        certificates = self.certificates()
        for name in registry.intermediates:
            self._check_certified(name, certificates[name], certificates[ROOT])
        passphrase: list[bytes | None] = []  # asked once, lazily

        def ask() -> bytes | None:
            if not passphrase:
                passphrase.append(passphrase_source())
            return passphrase[0]

        def deferred(name: str) -> DeferredKey:
            return DeferredKey(lambda: self._load_key(name, ask), present=lambda: self.has_key(name),
                               reference=self.token_reference(name))

        def load_signer(name: str) -> Signer:
            certificate = x509.load_pem_x509_certificate(self.certificate_path(name).read_bytes())
            if name != ROOT:
                self._check_certified(name, certificate, certificates[ROOT])
            return Signer(name, certificate, deferred(name))

        signers = {name: Signer(name, certificates[name], deferred(name)) for name in registry.names}
        issuing = signers[registry.issuing]
        issuing.hash_algorithm  # reads the issuing key now
        return Authority(root=signers[ROOT], issuing=issuing,
                         retired=tuple(signers[name] for name in registry.retired), load_signer=load_signer)

    def refreshed(self, authority: Authority) -> Authority | None:
        """``authority`` with the CAs another process added since it was loaded (`rotate
        intermediate` while `serve` runs): the newest issues; None when nothing changed."""
        from mtlskit.ca.authority import Authority

        registry = self.registry()
        if registry.names == tuple(authority.signers) or authority.load_signer is None:
            return None
        known = authority.signers
        signers = {name: known.get(name) or authority.load_signer(name) for name in registry.names}
        return Authority(root=signers[ROOT], issuing=signers[registry.issuing],
                         retired=tuple(signers[name] for name in registry.retired),
                         load_signer=authority.load_signer)

    def _check_certified(self, name: str, certificate: x509.Certificate, root: x509.Certificate) -> None:
        """An intermediate's file must hold a CA certificate the root signed: a stray
        certificate copied into HOME/ca/ must never become the issuing CA."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        try:
            certificate.verify_directly_issued_by(root)
            ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            ca = False
        if not ca:
            raise BadInput(f"{self.certificate_path(name)} is not a CA certificate signed by this root",
                           hint="move that file out of the CA directory")

    def _load_key(self, name: str, ask: Callable[[], bytes | None]):
        reference = self.token_reference(name)
        if reference is not None:
            from cryptography import x509

            from mtlskit.ca import pkcs11

            certificate = x509.load_pem_x509_certificate(self.certificate_path(name).read_bytes())
            return pkcs11.load_key(reference, certificate.public_key())
        path = self.key_path(name)
        if not path.exists():
            raise KeyOffline(f"this needs the {name} CA key, and it is not on this machine ({path} is absent)",
                             hint=root_offline_hint(path))
        data = path.read_bytes()
        return decrypt_key(data, name, ask)


def decrypt_key(data: bytes, name: str, ask: Callable[[], bytes | None]):
    """The private key in ``data`` (PKCS#8 PEM), asking for the passphrase only when it is encrypted.

    Raises:
        WrongPassphrase: the passphrase does not open it (or none was given).
    """
    from cryptography.hazmat.primitives import serialization

    encrypted = b"ENCRYPTED" in data[:64]
    password = ask() if encrypted else None
    if encrypted and not password:
        raise WrongPassphrase(f"the {name} CA key is encrypted and no passphrase was given",
                              hint="set MTLSKIT_CA_PASSPHRASE or use --passphrase-file")
    try:
        return serialization.load_pem_private_key(data, password=password)
    except ValueError:
        raise WrongPassphrase(f"wrong passphrase for the {name} CA key",
                              hint="check MTLSKIT_CA_PASSPHRASE or the --passphrase-file") from None
    except TypeError:  # a password given for an unencrypted key, or none for an encrypted one
        raise WrongPassphrase(f"cannot read the {name} CA key with this passphrase") from None
