"""CRL numbers on PostgreSQL under revocations and publications from several processes at
once (as replicas on several hosts would make them): each number is used once, they go
up in commit order, and the stored CRL is the newest, holding every revocation."""

from __future__ import annotations

import multiprocessing

import psycopg
from cryptography import x509

from tests.support_crl import no_passphrase, open_service

PROCESSES = 4
EACH = 2


def _revoke_at_barrier(home, names, barrier, results) -> None:
    from mtlskit.publish import crls
    from mtlskit.revoke.revoker import revoke

    try:
        service = open_service(home)
        authority = service.authority(no_passphrase)
        barrier.wait()
        for name in names:
            revoke(service, authority, [name], "key-compromise")
            crls.publish(service, authority, ["intermediate"])
        results.put("ok")
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_revocations_from_several_processes_never_reuse_a_crl_number(cli, tmp_path, postgres_url):
    home = tmp_path / "home"
    assert cli("--database-url", postgres_url, "--home", home, "init", "--name", "CRL CA", "--no-passphrase").code == 0
    names = [f"c{i}" for i in range(PROCESSES * EACH)]
    assert cli("--home", home, "issue", "client", *names, "--out", tmp_path / "out").code == 0
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=_revoke_at_barrier, args=(home, names[i::PROCESSES], barrier, results))
                 for i in range(PROCESSES)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert outcomes == ["ok"] * PROCESSES
    with psycopg.connect(postgres_url) as connection:
        numbers = [n for (n,) in connection.execute(
            "SELECT (detail::json->>'crl_number')::int FROM audit_events"
            " WHERE action = 'crl' AND issuer = 'intermediate' ORDER BY id")]
        stored = connection.execute("SELECT crl_number, der FROM crl_state WHERE issuer = 'intermediate'").fetchone()
    signed = 2 * PROCESSES * EACH   # one CRL per revocation, one per publication
    assert sorted(numbers) == list(range(1, signed + 1))   # each number once, none skipped
    assert stored[0] == signed
    crl = x509.load_der_x509_crl(stored[1])
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == signed
    assert len(crl) == len(names)
