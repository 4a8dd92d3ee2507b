"""The load client counts what fails (it is the proof of the zero-failure claims)."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.support_deploy import build_pki, free_port
from tests.support_load import LoadRun, LoadSpec


@pytest.fixture(scope="module")
def client_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("load")
    pki = build_pki()
    cert, key = pki.write_client(directory, "alice")
    ca = directory / "ca.pem"
    ca.write_bytes(pki.root.pem() + pki.intermediate.pem())
    return dict(ca=str(ca), cert=str(cert), key=str(key))


def test_refused_connections_are_failures(client_files):
    result = LoadRun(LoadSpec(port=free_port(), seconds=0.3, workers=1, **client_files)).run()
    assert result.ok == 0 and result.failures.get("connect", 0) > 0 and result.failed == result.failures["connect"]


def test_a_server_that_hangs_up_is_a_tls_failure(client_files):
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def hang_up():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        result = LoadRun(LoadSpec(port=listener.getsockname()[1], seconds=0.3, workers=1, **client_files)).run()
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert result.ok == 0 and result.failures.get("tls", 0) > 0, result.summary()
