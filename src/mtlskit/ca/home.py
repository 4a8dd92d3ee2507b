"""The CA's files in the home directory: certificates in PEM, keys as encrypted PKCS#8.

    HOME/ca/root.pem               HOME/ca/root.key.pem          (0600, encrypted)
    HOME/ca/intermediate.pem       HOME/ca/intermediate.key.pem  (absent with --no-intermediate)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.ca.authority import Authority
from mtlskit.ca.signer import Signer
from mtlskit.errors import AlreadyExists, NotFound, WrongPassphrase
from mtlskit.fileio import PRIVATE, PUBLIC, make_private_dir, write_atomic

CA_NAMES = ("root", "intermediate")


class CaFiles:
    def __init__(self, ca_dir: Path) -> None:
        self.ca_dir = ca_dir

    def certificate_path(self, name: str) -> Path:
        return self.ca_dir / f"{name}.pem"

    def key_path(self, name: str) -> Path:
        return self.ca_dir / f"{name}.key.pem"

    def exists(self) -> bool:
        return self.certificate_path("root").exists()

    def require(self) -> None:
        if not self.exists():
            raise NotFound(f"no CA in {self.ca_dir.parent}",
                           hint="create one with `mtlskit init`, or point --home / MTLSKIT_HOME at it")

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
            write_atomic(self.key_path(signer.name), signer.private_key_pem(passphrase), PRIVATE)
        for signer in signers:
            pem = signer.certificate.public_bytes(serialization.Encoding.PEM)
            write_atomic(self.certificate_path(signer.name), pem, PUBLIC)

    def certificates(self) -> dict[str, x509.Certificate]:
        """The CA certificates present, root first; no passphrase needed."""
        self.require()
        found = {}
        for name in CA_NAMES:
            path = self.certificate_path(name)
            if path.exists():
                found[name] = x509.load_pem_x509_certificate(path.read_bytes())
        return found

    def load(self, passphrase_source: Callable[[], bytes | None]) -> Authority:
        """Decrypt the CA keys; the passphrase is asked for only if a key is encrypted.

        Raises:
            WrongPassphrase: the passphrase does not open the keys (or none was given).
        """
        certificates = self.certificates()
        passphrase: list[bytes | None] = []  # asked once, lazily

        def ask() -> bytes | None:
            if not passphrase:
                passphrase.append(passphrase_source())
            return passphrase[0]

        signers = {name: Signer(name, cert, self._load_key(name, ask))
                   for name, cert in certificates.items()}
        return Authority(root=signers["root"], issuing=signers.get("intermediate", signers["root"]))

    def _load_key(self, name: str, ask: Callable[[], bytes | None]):
        data = self.key_path(name).read_bytes()
        password = ask() if b"ENCRYPTED" in data[:64] else None
        if b"ENCRYPTED" in data[:64] and not password:
            raise WrongPassphrase(f"the {name} CA key is encrypted and no passphrase was given",
                                  hint="set MTLSKIT_CA_PASSPHRASE or use --passphrase-file")
        try:
            return serialization.load_pem_private_key(data, password=password)
        except ValueError:
            raise WrongPassphrase(f"wrong passphrase for the {name} CA key",
                                  hint="check MTLSKIT_CA_PASSPHRASE or the --passphrase-file") from None
