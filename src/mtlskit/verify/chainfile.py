"""Is the chain file a client or server sends complete? (RFC 8446 4.4.2, RFC 5246 7.4.2)

The sender must send every intermediate up to (not necessarily including) the root
the peer trusts. A chain file that leans on an intermediate the verifier happens to
trust works here and fails at a server that trusts only the root: the most common
mTLS outage after expiry.
"""

from __future__ import annotations

from cryptography import x509

from mtlskit.verify.checks import describe, is_self_issued
from mtlskit.verify.findings import Finding, info, warning


def check_chain_file(path: list[x509.Certificate], chain: list[x509.Certificate]) -> list[Finding]:
    """Compare a validated ``path`` (leaf first) with the certificates of the chain file."""
    leaf, anchor = path[0], path[-1]
    needed = list(path[1:-1])
    if not is_self_issued(anchor):
        needed.append(anchor)  # trusted here, but a peer that trusts only the root needs it
    found: list[Finding] = []
    missing = [c for c in needed if c not in chain]
    if missing:
        names = ", ".join(describe(c) for c in missing)
        found.append(warning("chain-incomplete", f"the chain file does not contain {names}; a peer that "
                             "trusts only the root CA will refuse this certificate",
                             "append the intermediate CA certificate(s) to the chain file (use chain.pem "
                             "or fullchain.pem from mtlskit issue)"))
    present = [c for c in chain if c in path[1:]]
    if present != [c for c in path[1:] if c in present]:
        found.append(warning("chain-order", "the chain file lists its CA certificates out of order",
                             "order it from the leaf's issuer up to the root (RFC 5246 7.4.2)"))
    strangers = [c for c in chain if c not in path and c != leaf]
    if strangers:
        found.append(info("chain-extra", f"the chain file also holds {len(strangers)} certificate(s) not "
                          f"in the path: {', '.join(describe(c) for c in strangers)}"))
    return found
