"""Test databases: a fresh SQLite file or a fresh Postgres schema per test.

Postgres is mandatory in CI (`SERVE_TEST_REQUIRE_POSTGRES=1`, set by `.ci/run`): a missing
server fails the run loudly. Elsewhere its tests skip with a message saying how to enable them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    return os.environ.get("SERVE_TEST_POSTGRES_URL") or DEFAULT_PG


def postgres_required() -> bool:
    return os.environ.get("SERVE_TEST_REQUIRE_POSTGRES") == "1"


def postgres_reachable() -> str | None:
    """None if reachable, else why not."""
    try:
        engine = create_engine(postgres_url())
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver or network error means "not here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(postgres_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_url() else "?"
    url = f"{postgres_url()}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'serve.db'}"
        return
    why = postgres_reachable()
    if why is not None:
        message = (
            f"Postgres at {postgres_url()} is not reachable ({why}). Start it, or point "
            "SERVE_TEST_POSTGRES_URL at one, to run the Postgres half of the suite."
        )
        if postgres_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with postgres_schema() as url:
        yield url
