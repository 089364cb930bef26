"""token_counts and token_totals: the tokens load balancers read off OpenAI `usage`, per
market, for tokens/s and $ per million tokens

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'token_counts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('market', sa.String(length=16), nullable=False),
        sa.Column('prompt', sa.BigInteger(), nullable=False),
        sa.Column('completion', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('token_counts', schema=None) as batch_op:
        batch_op.create_index('ix_token_counts_service_at', ['service_id', 'at'], unique=False)
    op.create_table(
        'token_totals',
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('market', sa.String(length=16), nullable=False),
        sa.Column('prompt', sa.BigInteger(), nullable=False),
        sa.Column('completion', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('service_id', 'market'),
    )


def downgrade() -> None:
    op.drop_table('token_totals')
    with op.batch_alter_table('token_counts', schema=None) as batch_op:
        batch_op.drop_index('ix_token_counts_service_at')
    op.drop_table('token_counts')
