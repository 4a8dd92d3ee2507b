"""crl entries: the encoded revokedCertificates element of each revoked certificate,
and the number of entries in each stored CRL

Revision ID: 0002_crl
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_crl'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('crl_entries',
    sa.Column('issuer', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('issuer', 'serial'),
    sqlite_with_rowid=False,
    )
    with op.batch_alter_table('crl_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entry_count', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('crl_state', schema=None) as batch_op:
        batch_op.drop_column('entry_count')
    op.drop_table('crl_entries')
