"""Authorisation by client-certificate identity: the policy file (``policy.toml``), the
identity of a certificate, and the decision (pure); ``/authz`` in :mod:`mtlskit.api.authz_route`
asks it for Nginx's ``auth_request``."""
