"""service_versions: how the version rolls out (update_mode, max_surge) and when it was
first ready (ready_at, for `serve update --rollback`)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_versions', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('update_mode', sa.String(16), server_default='rolling', nullable=False)
        )
        batch_op.add_column(sa.Column('max_surge', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('ready_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('service_versions', schema=None) as batch_op:
        batch_op.drop_column('ready_at')
        batch_op.drop_column('max_surge')
        batch_op.drop_column('update_mode')
