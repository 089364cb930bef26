"""request_counts.seq: each load balancer numbers its reports, so one sent again after its
answer was lost is recorded once

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('request_counts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.create_index(
            'ux_request_counts_report', ['service_name', 'lb_id', 'seq'], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table('request_counts', schema=None) as batch_op:
        batch_op.drop_index('ux_request_counts_report')
        batch_op.drop_column('seq')
