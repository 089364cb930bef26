"""bundle digest per version; replica agent columns

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bundle_digest', sa.String(length=64), nullable=True))
    with op.batch_alter_table('replicas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agent_token', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('agent_url', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('agent_cert_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('job_sent_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('log_offset', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('replicas', schema=None) as batch_op:
        batch_op.drop_column('log_offset')
        batch_op.drop_column('job_sent_at')
        batch_op.drop_column('agent_cert_sha256')
        batch_op.drop_column('agent_url')
        batch_op.drop_column('agent_token')
    with op.batch_alter_table('service_versions', schema=None) as batch_op:
        batch_op.drop_column('bundle_digest')
