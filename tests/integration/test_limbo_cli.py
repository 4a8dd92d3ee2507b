"""The x509-limbo CRL cases as files through `mtlskit verify` itself: the harness in
tests/unit/test_limbo.py calls the same function; this closes the gap of file loading."""

from __future__ import annotations

from mtlskit.cli.app import main
from tests.unit.test_limbo import limbo_cases  # noqa: F401  (module-scoped fixture)


def test_limbo_crl_cases_through_the_command_line(limbo_cases, tmp_path, capsys):
    """The CRL cases once more, as files through `mtlskit verify` itself (exit 0 or 1)."""
    for case in (c for c in limbo_cases if "has-crl" in c["features"]):
        work = tmp_path / case["id"].replace("::", "_")
        work.mkdir()
        files = {"leaf.pem": case["peer_certificate"], "ca.pem": "".join(case["trusted_certs"]),
                 "chain.pem": "".join(case["untrusted_intermediates"]), "crl.pem": "".join(case["crls"])}
        for name, text in files.items():
            (work / name).write_text(text)
        args = ["--home", str(work / "no-home"), "verify", str(work / "leaf.pem"), "--ca", str(work / "ca.pem"),
                "--crl", str(work / "crl.pem"), "--purpose", case["validation_kind"].lower()]
        if case["untrusted_intermediates"]:
            args += ["--chain", str(work / "chain.pem")]
        if case["validation_time"]:
            args += ["--at", case["validation_time"]]
        if case.get("expected_peer_name"):
            args += ["--host", case["expected_peer_name"]["value"]]
        rc = main(args)
        capsys.readouterr()
        assert rc == (0 if case["expected_result"] == "SUCCESS" else 1), case["id"]
