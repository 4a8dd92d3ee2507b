"""service: API tokens with roles, and a transaction-safe change counter

``api_tokens``: bearer tokens of the REST API (`mtlskit token api create NAME --role R`);
only the SHA-256 of a token is stored. ``revoked_at`` set: refused from the next request.

``change_counters``: one row per topic, bumped (``value = value + 1``) inside every
transaction that changes what the topic covers. The row lock orders the bumps the way the
transactions commit, so a reader that sees a new value has every change before it (unlike
audit-event ids, which on PostgreSQL commit out of order). Topic ``certificates``: what
`serve` caches from the inventory changed (a certificate issued, renewed or revoked, a
deployment recorded).

Revision ID: 0005_service
Revises: 0004_lifecycle
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_service'
down_revision = '0004_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_api_tokens_name'),
    sa.UniqueConstraint('token_sha256', name='uq_api_tokens_sha256'),
    )
    counters = op.create_table('change_counters',
    sa.Column('topic', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('topic'),
    )
    op.bulk_insert(counters, [{'topic': 'certificates', 'value': 0}])


def downgrade() -> None:
    op.drop_table('change_counters')
    op.drop_table('api_tokens')
