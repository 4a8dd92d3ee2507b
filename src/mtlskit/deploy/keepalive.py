"""How long an open keep-alive connection outlives a revocation (constants for the templates).

A server checks the client certificate once, at the handshake. A reload (CRL mode) closes
idle keep-alive connections, but with OCSP nothing is reloaded, so these limits bound how
long a client revoked after its handshake keeps being served on a connection it already
holds (HAProxy checks the revoked serials on every request and needs none):
- Nginx: ``keepalive_time`` -- no request starts on a connection older than this;
- Apache (no connection age limit exists): the first request and ``MaxKeepAliveRequests``
  more at most, each within ``KeepAliveTimeout`` of the previous one.
"""

from __future__ import annotations

NGINX_KEEPALIVE_TIME = 60        # seconds
APACHE_KEEPALIVE_TIMEOUT = 5     # seconds idle between two requests
APACHE_MAX_REQUESTS = 100        # requests on one connection
