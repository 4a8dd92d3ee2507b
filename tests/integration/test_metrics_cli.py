"""`serve` refuses a metrics_token_file it cannot trust before it makes anything."""

from __future__ import annotations

import pytest

from mtlskit.cli.app import main
from tests.support_crl import make_home


@pytest.mark.parametrize("mode, content, message", [
    (0o644, "s3cret-value\n", "readable by others"), (0o600, "", "must hold one token"),
    (0o600, "two words\n", "must hold one token"), (None, None, "cannot read"),
])
def test_serve_refuses_a_bad_metrics_token_file(tmp_path, capsys, mode, content, message):
    home = make_home(tmp_path)
    token_file = tmp_path / "metrics-token"
    if content is not None:
        token_file.write_text(content)
        token_file.chmod(mode)
    with open(home / "mtlskit.toml", "a") as settings:
        settings.write(f'metrics_token_file = "{token_file}"\n')
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    capsys.readouterr()
    assert main(["--home", str(home), "serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "s3cret" not in err
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before  # no responder, no CRL written
