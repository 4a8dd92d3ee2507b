"""The web UI of `mtlskit serve --ui` under ``/ui/``: server-rendered pages (Jinja2), no
JavaScript. See :mod:`mtlskit.ui.app` for the routes, :mod:`mtlskit.ui.session` for
log-in, sessions and CSRF."""
