"""autoscaler_state becomes tick_state (typed in controller.tick_state)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

The JSON keeps its shape (scaler waits, failure streak, fallback targets, blocked clouds,
last orphan scan), so rows need no rewrite: `TickState.from_json` reads what was stored.
"""

from __future__ import annotations

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.alter_column('autoscaler_state', new_column_name='tick_state')


def downgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.alter_column('tick_state', new_column_name='autoscaler_state')
