from mtlskit.store.db import SCHEMA_HEAD, head_revision


def test_schema_head_constant_matches_the_newest_migration():
    """Update SCHEMA_HEAD in store/db.py whenever a migration is added."""
    assert SCHEMA_HEAD == head_revision()
