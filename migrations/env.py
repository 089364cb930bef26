"""Alembic environment: runs on the connection the controller hands it, or on a URL.

`compare_type=True` so autogenerate notices column type changes, not just new columns.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

from controller.db.engine import normalise_url
from controller.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("SERVE_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    engine = engine_from_config(
        {"sqlalchemy.url": normalise_url(url or "")}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _run(conn)


run_online()
