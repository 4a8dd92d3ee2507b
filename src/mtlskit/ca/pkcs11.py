"""CA keys inside a PKCS#11 token (an HSM; SoftHSM2 in tests), through python-pkcs11.

A token key is a subclass of cryptography's private-key class (``TokenEcKey``,
``TokenRsaKey``) whose ``sign()`` asks the token, so every builder and the Signer's DER
fast path work unchanged; ``private_bytes`` and ``private_numbers`` refuse (the key is
generated in the token, sensitive and not extractable, and never leaves it).

The home keeps, for each CA whose key is in a token, a small reference beside its
certificate (``HOME/ca/<name>.pkcs11.json``, see :class:`KeyReference`): the module
path, the token label, the key's label and id, the key type and the PIN file's path.
The PIN itself is only ever read from that file (0600, like ssh keys), kept in memory,
and never put in argv, an environment, a log or an exception message.

Sessions and fork: a PKCS#11 session belongs to the process that opened it. Batch
issuance and ``serve`` fork workers that inherit the Signer; the first signature in a
child finalizes and re-initializes the library there (the parent's handles are dropped,
never closed: they are the parent's) and opens and logs in its own session.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import secrets
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from mtlskit.errors import BadInput, InternalError
from mtlskit.fileio import MAX_SECRET, InputRefused, read_input
from mtlskit.pki.keys import KeyType

_CURVE_OIDS = {KeyType.EC_P256: "1.2.840.10045.3.1.7", KeyType.EC_P384: "1.3.132.0.34"}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
TOKEN_KEY_TYPES = (*_CURVE_OIDS, *_RSA_BITS)
RETRY_DELAYS = (0.02, 0.05, 0.1, 0.2)  # seconds before looking for a token again
# RFC 8017 §9.2 note 1: the DER DigestInfo that precedes each hash in PKCS#1 v1.5
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


@dataclasses.dataclass(frozen=True)
class TokenConfig:
    """Where the keys live: the PKCS#11 module (a shared library), the token's label and
    the file holding the user PIN (its path, never its content)."""

    module: Path
    token: str
    pin_file: Path


@dataclasses.dataclass(frozen=True)
class KeyReference:
    """One CA key in a token, as the home records it."""

    token: TokenConfig
    label: str
    key_id: bytes
    key_type: KeyType

    def to_json(self) -> bytes:
        document = {"module": str(self.token.module), "token": self.token.token,
                    "pin_file": str(self.token.pin_file), "label": self.label,
                    "id": self.key_id.hex(), "key_type": self.key_type.value}
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "KeyReference":
        try:
            document = json.loads(data)
            token = TokenConfig(Path(document["module"]), str(document["token"]), Path(document["pin_file"]))
            return cls(token, str(document["label"]), bytes.fromhex(document["id"]),
                       KeyType.parse(document["key_type"]))
        except (ValueError, KeyError, TypeError, BadInput):
            raise BadInput(f"{where} is not a PKCS#11 key reference written by mtlskit") from None


def read_pin(pin_file: Path) -> str:
    """The first line of the PIN file (0600 or stricter, at most 4 KiB).

    Raises:
        BadInput: unreadable, empty, or readable by group or others (the PIN is never echoed).
    """
    try:
        data = read_input(pin_file, MAX_SECRET, private=True)
    except InputRefused as exc:
        raise BadInput(f"cannot read the PKCS#11 PIN file {pin_file}: {exc}",
                       hint=f"chmod 600 {pin_file}" if "others" in str(exc) else None) from None
    lines = data.splitlines()
    pin = lines[0].strip() if lines else b""
    if not pin:
        raise BadInput(f"the PKCS#11 PIN file {pin_file} is empty")
    try:
        return pin.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"the PKCS#11 PIN file {pin_file} is not UTF-8 text") from None


class _Process:
    """What this process has: the libraries it initialized, its logged-in token sessions
    (PKCS#11 logs a whole process in: one session per token), and an epoch that moves
    whenever the libraries start afresh (after a fork, or ``restart_libraries``)."""

    lock = threading.RLock()
    initialized: set[str] = set()
    forked = False
    epoch = 0
    tokens: dict[tuple[str, str, str], "TokenSession"] = {}
    logins: dict[tuple[str, str], str] = {}   # the PIN each token was logged in with, by this process
    abandoned: list = []   # the parent's sessions, kept alive so that nothing closes them here


def _after_fork_in_child() -> None:
    _Process.lock = threading.RLock()
    _Process.forked = bool(_Process.initialized) or _Process.forked
    _Process.initialized = set()
    _Process.logins = {}


os.register_at_fork(after_in_child=_after_fork_in_child)


def restart_libraries() -> None:
    """Finalize and initialize again every library this process loaded (the tokens made
    since are listed then); every session is dropped and opened again on next use."""
    import pkcs11

    with _Process.lock:
        for module in _Process.initialized:
            pkcs11.lib(module).reinitialize()
        _Process.epoch += 1
        _Process.tokens.clear()
        _Process.logins.clear()


def _restart(library, module: Path) -> None:
    """Finalize and initialize the library again: every session of it is closed and this
    process logged out of its tokens (the sessions open again on next use: new epoch)."""
    library.reinitialize()
    _Process.epoch += 1
    for key in [key for key in _Process.logins if key[0] == str(module)]:
        del _Process.logins[key]


def _library(module: Path):
    """The module, initialized in this process (re-initialized after a fork).

    Raises:
        BadInput: not a regular file, or not a PKCS#11 library.
    """
    import pkcs11

    if not module.is_file():
        raise BadInput(f"--pkcs11-module {module} is not a file", hint="give the path of the HSM's "
                       "PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
    try:
        library = pkcs11.lib(str(module))
    except pkcs11.PKCS11Error:
        raise BadInput(f"{module} is not a PKCS#11 library (no C_GetFunctionList)",
                       hint="give the path of the HSM's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so") from None
    if str(module) not in _Process.initialized:
        if _Process.forked:  # the parent's C_Initialize is not ours: start afresh
            library.reinitialize()
        _Process.initialized.add(str(module))
    return library


class TokenSession:
    """A logged-in session on one token, opened again in each process that uses it."""

    def __init__(self, config: TokenConfig, pin: str) -> None:
        self.config = config
        self._pin = pin
        self._opened_in: tuple[int, int] | None = None   # (pid, epoch)
        self._session = None
        self.generation = 0

    def __repr__(self) -> str:
        return f"TokenSession(token={self.config.token!r})"

    @property
    def _pid(self) -> int | None:
        return self._opened_in[0] if self._opened_in else None

    def session(self):
        if self._opened_in != (os.getpid(), _Process.epoch):
            with _Process.lock:
                if self._opened_in != (os.getpid(), _Process.epoch):
                    self._open()
        return self._session

    def pin_matches(self, pin: str) -> bool:
        return hmac.compare_digest(self._pin.encode(), pin.encode())

    def _open(self) -> None:
        library = _library(self.config.module)
        for delay in (*RETRY_DELAYS, None):
            try:
                session = self._log_in(library)
                break
            except _OtherLogin:   # log out (by starting the library afresh), then log in with our PIN
                _restart(library, self.config.module)
                try:
                    session = self._log_in(library)
                except _Transient as exc:
                    raise exc.error from None
                break
            except _Transient as exc:
                if delay is None:
                    raise exc.error from None
            # a token read while another process rewrites its files (SoftHSM2 does at log-in) is
            # not listed: read the tokens afresh
            time.sleep(delay)
            _restart(library, self.config.module)
        if self._session is not None and self._pid != os.getpid():
            _Process.abandoned.append(self._session)
        self._session, self._opened_in = session, (os.getpid(), _Process.epoch)
        self.generation += 1

    def _log_in(self, library):
        import pkcs11

        try:
            token = library.get_token(token_label=self.config.token)
        except pkcs11.NoSuchToken:
            raise _Transient(BadInput(f"no PKCS#11 token labelled {self.config.token!r} in {self.config.module}",
                             hint="list the tokens with `softhsm2-util --show-slots` (or the HSM's tool)")) from None
        except pkcs11.MultipleTokensReturned:
            raise BadInput(f"several PKCS#11 tokens are labelled {self.config.token!r}") from None
        except pkcs11.PKCS11Error as exc:
            raise _Transient(BadInput(f"cannot list the tokens of {self.config.module}: {type(exc).__name__}")) from None
        key = (str(self.config.module), self.config.token)
        try:
            session = token.open(rw=True, user_pin=self._pin)
        except pkcs11.UserAlreadyLoggedIn:
            # PKCS#11 logs the whole process in: a session opened since needs no PIN, but
            # only the PIN that logged in may ride on it; any other is checked by a login
            if not hmac.compare_digest(_Process.logins.get(key, "").encode(), self._pin.encode()):
                raise _OtherLogin() from None
            return token.open(rw=True)
        except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinInvalid):
            raise BadInput(f"wrong PIN for the PKCS#11 token {self.config.token!r} "
                           f"(from {self.config.pin_file})") from None
        except pkcs11.PinLocked:
            raise BadInput(f"the user PIN of the PKCS#11 token {self.config.token!r} is locked") from None
        except pkcs11.PKCS11Error as exc:
            raise _Transient(BadInput(f"cannot log in to the PKCS#11 token {self.config.token!r}: "
                                      f"{type(exc).__name__}")) from None
        _Process.logins[key] = self._pin
        return session


class _OtherLogin(Exception):
    """This process is logged in to the token with another PIN than the one at hand."""


class _Transient(Exception):
    """A token not found or not answering, which a second look may find (``error`` if not)."""

    def __init__(self, error: BadInput) -> None:
        super().__init__(error.message)
        self.error = error


def open_token(config: TokenConfig) -> TokenSession:
    """The process's session on the token, logged in with the PIN file's PIN (checked now:
    a PIN other than the one this process logged in with logs in afresh).

    Raises:
        BadInput: the module, the token, the PIN file or the PIN is wrong (each said so).
    """
    pin = read_pin(config.pin_file)
    key = (str(config.module), config.token, str(config.pin_file))  # keys record their config's PIN file
    with _Process.lock:
        current = _Process.tokens.get(key)
        if current is not None and current.pin_matches(pin):
            current.session()
            return current
        token = TokenSession(config, pin)
        token.session()
        _Process.tokens[key] = token
        return token


def labels_in_use(token: TokenSession, labels: list[str]) -> list[str]:
    """The labels among ``labels`` that some object of the token already has."""
    from pkcs11 import Attribute

    session = token.session()
    return [label for label in labels if list(session.get_objects({Attribute.LABEL: label}))]


def generate_key(token: TokenSession, key_type: KeyType, label: str):
    """A new key pair in the token (private half sensitive and never extractable);
    returns the private key as a cryptography key whose ``sign`` calls the token."""
    from pkcs11 import Attribute, KeyType as P11KeyType, MechanismFlag
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
    from pkcs11.util.rsa import encode_rsa_public_key

    if key_type not in TOKEN_KEY_TYPES:
        raise BadInput(f"--key-type {key_type.value} cannot be kept in a PKCS#11 token here",
                       hint="choose ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096")
    key_id = secrets.token_bytes(16)
    private = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
               Attribute.EXTRACTABLE: False, Attribute.SIGN: True}
    public = {Attribute.TOKEN: True, Attribute.VERIFY: True}
    options = dict(store=True, label=label, id=key_id, public_template=public, private_template=private,
                   capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY)
    session = token.session()
    if key_type in _CURVE_OIDS:
        parameters = session.create_domain_parameters(
            P11KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[key_type])}, local=True)
        public_object, _ = parameters.generate_keypair(**options)
        spki = encode_ec_public_key(public_object)
        public_key = serialization.load_der_public_key(spki)
    else:
        public_object, _ = session.generate_keypair(P11KeyType.RSA, _RSA_BITS[key_type], **options)
        public_key = serialization.load_der_public_key(
            _rsa_spki(encode_rsa_public_key(public_object)))
    return token_key(KeyReference(token.config, label, key_id, key_type), token, public_key)


def _rsa_spki(pkcs1: bytes) -> bytes:
    """A SubjectPublicKeyInfo around a PKCS#1 RSAPublicKey."""
    from mtlskit.pki import der

    algorithm = der.sequence(der.oid("1.2.840.113549.1.1.1"), der.encode(der.NULL, b""))
    return der.sequence(algorithm, der.encode(der.BIT_STRING, b"\x00" + pkcs1))


def token_key(reference: KeyReference, token: TokenSession, public_key):
    """The cryptography key for ``reference``, whose public half is ``public_key``."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return TokenEcKey(reference, token, public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        return TokenRsaKey(reference, token, public_key)
    raise BadInput(f"the key {reference.label!r} in the PKCS#11 token is neither EC nor RSA")


def load_key(reference: KeyReference, public_key):
    """The key of a CA certificate, found in its token.

    Raises:
        BadInput: token, PIN or key missing, or the token's key is not the certificate's.
    """
    key = token_key(reference, open_token(reference.token), public_key)
    key.check_public_half()
    return key


def destroy_keys(token: TokenSession, labels: list[str]) -> None:
    """Remove the key pairs of these labels (a failed `init` leaves no key behind)."""
    from pkcs11 import Attribute

    session = token.session()
    for label in labels:
        for found in list(session.get_objects({Attribute.LABEL: label})):
            found.destroy()


class _TokenKeyMixin:
    """The token side of TokenEcKey and TokenRsaKey."""

    def _setup(self, reference: KeyReference, token: TokenSession, public_key) -> None:
        self.reference = reference
        self._token = token
        self._public_key = public_key
        self._handle = None
        self._generation = -1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} token={self.reference.token.token!r} label={self.reference.label!r}>"

    def _private_object(self):
        from pkcs11 import ObjectClass
        import pkcs11

        session = self._token.session()
        if self._generation != self._token.generation:
            try:
                self._handle = session.get_key(object_class=ObjectClass.PRIVATE_KEY,
                                               label=self.reference.label, id=self.reference.key_id)
            except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
                raise BadInput(f"the PKCS#11 token {self.reference.token.token!r} has no single private key "
                               f"labelled {self.reference.label!r} with id {self.reference.key_id.hex()}") from None
            self._generation = self._token.generation
        return self._handle

    def check_public_half(self) -> None:
        """Refuse a token key that is not the certificate's (when the token keeps its public half)."""
        from pkcs11 import Attribute, ObjectClass

        self._private_object()
        found = list(self._token.session().get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                                         Attribute.LABEL: self.reference.label,
                                                         Attribute.ID: self.reference.key_id}))
        if len(found) != 1:
            return  # some tokens keep no public object: the first signature will tell
        if _public_der(_token_public_key(found[0])) != _public_der(self._public_key):
            raise BadInput(f"the key {self.reference.label!r} in the PKCS#11 token "
                           f"{self.reference.token.token!r} is not the key of this CA certificate")

    def _sign_raw(self, mechanism, data: bytes) -> bytes:
        import pkcs11

        try:
            return self._private_object().sign(data, mechanism=mechanism)
        except pkcs11.PKCS11Error as exc:
            raise InternalError(f"the PKCS#11 token {self.reference.token.token!r} refused to sign with "
                                f"{self.reference.label!r}: {type(exc).__name__}") from None

    def public_key(self):
        return self._public_key

    def private_bytes(self, *args, **kwargs):
        raise BadInput(f"the CA key {self.reference.label!r} is in the PKCS#11 token "
                       f"{self.reference.token.token!r}: it cannot leave the token")

    def private_numbers(self):
        self.private_bytes()

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _token_public_key(public_object):
    from pkcs11 import KeyType as P11KeyType
    from pkcs11.util.ec import encode_ec_public_key
    from pkcs11.util.rsa import encode_rsa_public_key

    if public_object.key_type == P11KeyType.EC:
        return serialization.load_der_public_key(encode_ec_public_key(public_object))
    return serialization.load_der_public_key(_rsa_spki(encode_rsa_public_key(public_object)))


def _digest(data: bytes, algorithm) -> tuple[bytes, str]:
    if isinstance(algorithm, utils.Prehashed):
        return data, algorithm._algorithm.name
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize(), algorithm.name


class TokenEcKey(_TokenKeyMixin, ec.EllipticCurvePrivateKey):
    """An EC key in a token: ECDSA over the hash computed here (CKM_ECDSA), its raw
    r||s turned into the DER Ecdsa-Sig-Value that X.509 carries."""

    def __init__(self, reference: KeyReference, token: TokenSession, public_key) -> None:
        self._setup(reference, token, public_key)

    @property
    def curve(self):
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def sign(self, data, signature_algorithm):
        from pkcs11 import Mechanism

        if not isinstance(signature_algorithm, ec.ECDSA):
            raise BadInput("a token EC key signs ECDSA only")
        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._sign_raw(Mechanism.ECDSA, digest)
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def exchange(self, *args, **kwargs):
        raise BadInput("a CA key in a token only signs")


class TokenRsaKey(_TokenKeyMixin, rsa.RSAPrivateKey):
    """An RSA key in a token: PKCS#1 v1.5 (CKM_RSA_PKCS) over DigestInfo || hash."""

    def __init__(self, reference: KeyReference, token: TokenSession, public_key) -> None:
        self._setup(reference, token, public_key)

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def sign(self, data, padding_, algorithm):
        from pkcs11 import Mechanism

        if not isinstance(padding_, padding.PKCS1v15):
            raise BadInput("a token RSA key signs PKCS#1 v1.5 only")
        digest, name = _digest(bytes(data), algorithm)
        if name not in _DIGEST_INFO:
            raise BadInput(f"a token RSA key does not sign with {name}")
        return self._sign_raw(Mechanism.RSA_PKCS, _DIGEST_INFO[name] + digest)

    def decrypt(self, *args, **kwargs):
        raise BadInput("a CA key in a token only signs")


def key_label(prefix: str, ca_name: str) -> str:
    """The token label of a CA's key: "<prefix>-<CA name>" ("mtlskit-intermediate-2")."""
    return f"{prefix}-{ca_name}"


def sibling_key(key, key_type: KeyType, prefix: str, ca_name: str):
    """A new key in the token of ``key`` (a token key), for the CA ``ca_name``.

    Raises:
        BadInput: the token already holds an object with that label.
    """
    label = key_label(prefix, ca_name)
    if labels_in_use(key._token, [label]):
        raise BadInput(f"the PKCS#11 token {key.reference.token.token!r} already holds a key labelled {label!r}",
                       hint="remove it from the token, or rename it, first")
    return generate_key(key._token, key_type, label)
