"""request_counts.in_flight and lb_id: the requests in flight each load balancer reports
with its sync, for concurrency-based autoscaling (target_concurrency_per_replica)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('request_counts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_flight', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lb_id', sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('request_counts', schema=None) as batch_op:
        batch_op.drop_column('lb_id')
        batch_op.drop_column('in_flight')
