"""initial inventory

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('issuer', sa.String(length=64), nullable=True),
    sa.Column('serial', sa.String(length=42), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('sans', sa.Text(), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('key_type', sa.String(length=32), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.Column('fingerprint_sha256', sa.String(length=64), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('fingerprint_sha256'),
    sa.UniqueConstraint('issuer', 'serial', name='uq_certificates_issuer_serial')
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index('ix_certificates_name', ['name'], unique=False)
        batch_op.create_index('ix_certificates_not_after', ['not_after'], unique=False)
        batch_op.create_index('ix_certificates_status', ['issuer', 'status'], unique=False)

    op.create_table('crl_state',
    sa.Column('issuer', sa.String(length=64), nullable=False),
    sa.Column('crl_number', sa.Integer(), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=True),
    sa.Column('der', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('issuer')
    )
    op.create_table('deployments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('server', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('directory', sa.Text(), nullable=False),
    sa.Column('revocation', sa.String(length=8), nullable=False),
    sa.Column('reload_command', sa.Text(), nullable=True),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('directory')
    )


def downgrade() -> None:
    op.drop_table('deployments')
    op.drop_table('crl_state')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_certificates_status')
        batch_op.drop_index('ix_certificates_not_after')
        batch_op.drop_index('ix_certificates_name')

    op.drop_table('certificates')
    op.drop_table('audit_events')
