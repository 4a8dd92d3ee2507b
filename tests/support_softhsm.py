"""A real SoftHSM2 for the PKCS#11 tests: its own configuration and token directory under
a temporary directory, tokens made with `softhsm2-util --init-token --free`.

SoftHSM2 reads SOFTHSM2_CONF and lists its tokens when the library is initialized, and a
process initializes it once: ``activate()`` points this process (and its children) at
this SoftHSM and re-initializes the library, so each test module has its own tokens.
(The test PINs go to softhsm2-util's argv: that is the test's tool, not mtlskit.)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import json
import subprocess
import sys
from pathlib import Path

CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
              "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "hsm-pin-5f0c2a9e"      # distinctive: the leak tests grep for it
SO_PIN = "hsm-so-pin-77d1b3"


_LIST_OBJECTS = """
import json, sys
import pkcs11
from pkcs11 import Attribute, ObjectClass
flags = ("SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE", "TOKEN")
found = []
token = pkcs11.lib(sys.argv[1]).get_token(token_label=sys.argv[2])
with token.open(user_pin=sys.stdin.read()) as session:
    for item in session.get_objects():
        entry = {"class": item.object_class.name, "label": item[Attribute.LABEL], "id": item[Attribute.ID].hex()}
        if item.object_class == ObjectClass.PRIVATE_KEY:
            entry.update({name: bool(item[getattr(Attribute, name)]) for name in flags})
        found.append(entry)
print(json.dumps(found))
"""


def module_path() -> Path:
    for candidate in CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise RuntimeError("SoftHSM2 is not installed (Debian package softhsm2: scripts/system-deps.sh)")


@dataclasses.dataclass
class SoftHsm:
    base: Path
    module: Path
    pin_file: Path

    @property
    def conf(self) -> Path:
        return self.base / "softhsm2.conf"

    def env(self) -> dict[str, str]:
        """The environment for a child that uses this SoftHSM (mtlskit run as a process)."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str, pin: str = PIN) -> None:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                        "--so-pin", SO_PIN], env=self.env(), check=True, capture_output=True, timeout=60)
        self.activate()   # a library initialized before the token existed does not list it

    def activate(self) -> None:
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        import pkcs11

        from mtlskit.ca.pkcs11 import restart_libraries

        pkcs11.lib(str(self.module)).reinitialize()
        restart_libraries()

    def init_args(self, token: str, prefix: str = "mtlskit") -> list[str]:
        return ["--pkcs11-module", str(self.module), "--pkcs11-token", token,
                "--pkcs11-pin-file", str(self.pin_file), "--pkcs11-key-prefix", prefix]

    def objects(self, token: str, pin: str = PIN) -> list[dict]:
        """Every object of the token (label, id as hex, class name) and the private keys'
        protection flags, read by another process (this one's login would get in the way)."""
        result = subprocess.run([sys.executable, "-c", _LIST_OBJECTS, str(self.module), token],
                                input=pin.encode(), env=self.env(), capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return json.loads(result.stdout)

    def close(self) -> None:
        os.environ.pop("SOFTHSM2_CONF", None)
        shutil.rmtree(self.base, ignore_errors=True)


def start_softhsm(base: Path, *tokens: str) -> SoftHsm:
    """A SoftHSM2 with its own token directory under ``base``, these tokens made, a PIN file 0600."""
    (base / "tokens").mkdir(parents=True)
    hsm = SoftHsm(base, module_path(), base / "pin")
    hsm.conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
    fd = os.open(hsm.pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(PIN + "\n")
    for label in tokens:
        hsm.init_token(label)
    hsm.activate()
    return hsm
