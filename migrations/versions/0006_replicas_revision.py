"""services.replicas_revision: bumped with every write to one of the service's replicas

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

A listing of the fleet rebuilds only the services whose replicas changed since it last
looked (controller/api/service_listing.py), on any controller reading the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('replicas_revision', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('replicas_revision')
