"""Backup and restore of a CA home (`mtlskit backup`, `mtlskit restore`)."""
