"""Verify and diagnose: why a certificate or a mutual TLS handshake fails.

Offline by default (``mtlskit verify``), :func:`mtlskit.verify.verifier.verify`:
  path building and validation by ``cryptography.x509.verification`` (path.py), plus
  what it does not do: per-certificate checks with specific codes (checks.py), CRL
  revocation of every certificate of the path (crl.py), the inventory
  (inventory.py), OCSP when asked (ocsp.py), and the chain file (chainfile.py).
  Without --crl and without a home that knows the CA, the CRL each certificate names
  is fetched (remote.py, over the bounded HTTP of fetch.py; --no-fetch turns it off).

Live (``mtlskit probe``), :func:`mtlskit.verify.probe.probe`:
  connections recorded by session.py (the CertificateRequest's CA names, the server
  chain and alerts, read with OpenSSL's message callback and parsed by tlswire.py),
  judged by diagnose.py. Revocation of the client certificate: the home's inventory,
  else the CRL and OCSP it names (remote.py); the dates of the CRL file of the
  deployment the home recorded at that address.

Held against x509-limbo (tests/unit/test_limbo.py): every CLIENT and SERVER case
runs through ``verify``. Not supported, and skipped there by feature: public-suffix
wildcard rules, directoryName name constraints, the Web PKI "EKU is mandatory" rule
(a missing EKU is a warning here, RFC 5280 4.2.1.12), RFC 5280 behaviour that
conflicts with the Web PKI profile, checks on the trust anchor itself, CA
certificates in the leaf position (refused), paths through self-issued key-rollover
intermediates (cryptography does not build them), delta and indirect CRLs.

Every result is a :class:`~mtlskit.verify.findings.Finding` with a stable code.
"""
