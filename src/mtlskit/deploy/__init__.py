"""Deploy: mTLS configuration for Nginx, Apache and HAProxy.

Pure parts (no I/O): ``options`` (validated deploy request), ``bundle`` (which CA
certificates and CRLs a server needs, verify depth), ``render`` (options + paths ->
configuration text, from the Jinja2 templates in ``templates/``), ``headers`` (the
identity headers every server sends upstream).

I/O parts: ``install`` (atomic file installation with safe modes), ``check`` (the
server's own config test), ``reload`` (reload commands and the HAProxy admin socket),
``records`` (the ``deployments`` table), ``refresh`` (rewrite every deployment's CRL
bundle and reload), ``workflow`` (the ``mtlskit deploy`` workflow).
"""
