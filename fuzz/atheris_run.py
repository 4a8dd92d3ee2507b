"""The byte-level targets under atheris (libFuzzer, coverage-guided), beside hypothesis:
``python -m fuzz.atheris_run TARGET --seconds N``, TARGET one of ocsp_request, http_simple,
csr_pem. The corpus starts from the hypothesis targets' real seeds. libFuzzer prints the
executions ("Done N runs") and stops at the first finding with its input and traceback.
atheris is optional (``pip install atheris``): `make fuzz` runs the hypothesis targets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["mtlskit"]):
    import mtlskit.api.accept  # noqa: F401 - instrumented before the targets import them
    import mtlskit.pki.encoding  # noqa: F401
    import mtlskit.publish.ocsp  # noqa: F401

from fuzz import csr_pem, http_head, ocsp_request  # noqa: E402

TARGETS = {
    "ocsp_request": (ocsp_request.check, ocsp_request.seeds),
    "http_simple": (http_head.check_simple, lambda: [b"POST /ocsp HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s"
                                                     % (len(s), s) for s in ocsp_request.seeds()[:4]]),
    "csr_pem": (lambda data: csr_pem.check((data, None)), csr_pem.seeds),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    check, seeds = TARGETS[args.target]
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{args.target}-"))
    for index, seed in enumerate(seeds()):
        (corpus / f"seed{index}").write_bytes(seed)
    options = [f"-max_total_time={args.seconds}", "-print_final_stats=1", f"-artifact_prefix={corpus}/"]
    atheris.Setup([sys.argv[0], *options, str(corpus)], check)  # a finding's input: "Test unit written to"
    atheris.Fuzz()


if __name__ == "__main__":
    main()
