"""replicas.drain_deadline: when a cloud said it takes a DRAINING replica's instance

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

A preemption notice puts a replica in DRAINING; the deadline bounds how long it is kept
(replica_manager/observe.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('replicas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drain_deadline', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('replicas', schema=None) as batch_op:
        batch_op.drop_column('drain_deadline')
