"""mtlskit: the whole life of mutual TLS, from one tool."""

__version__ = "0.1.0"
