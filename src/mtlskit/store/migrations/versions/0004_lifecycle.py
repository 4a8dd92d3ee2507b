"""lifecycle: where each certificate was written, what replaced it, enrollment tokens

``certificates.directory``: the absolute directory `issue` (or `sign --out`) wrote the
certificate's files to; `renew` and `agent` write the successor there. NULL for
certificates issued before this revision or written nowhere (a CSR signed to stdout).

``certificates.superseded_by``: the serial (hex, as ``serial``) of the certificate that
renewed this one; the old one stays valid until it expires (or is revoked with reason
superseded by ``renew --revoke-old``).

``enrollment_tokens``: single-use tokens made by `mtlskit token create`; only the SHA-256
of the token is stored. ``request`` is the JSON of what the token allows (profile, SANs,
subject fields, lifetime); ``used_at`` is set once, by the one enrollment that wins.

Revision ID: 0004_lifecycle
Revises: 0003_crl_published
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_lifecycle'
down_revision = '0003_crl_published'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('directory', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('superseded_by', sa.String(length=42), nullable=True))
    op.create_table('enrollment_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_serial', sa.String(length=42), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256', name='uq_enrollment_tokens_sha256'),
    )


def downgrade() -> None:
    op.drop_table('enrollment_tokens')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_column('superseded_by')
        batch_op.drop_column('directory')
