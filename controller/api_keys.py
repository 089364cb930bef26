"""API keys of a service's endpoint: made here, shown once, stored as SHA-256 hashes.

Why a plain SHA-256 and not bcrypt or argon2: those are slow on purpose, to make guessing
a *password* (a low-entropy secret a person chose) from its hash expensive. These keys are
256 bits from ``secrets`` (``KEY_BYTES``); no one can search that space, whatever the hash
costs, so a slow hash would protect nothing and would cost the load balancer milliseconds of
CPU on every request. Nor is a salt needed: precomputed tables are useless against random
keys. Invariant: the value exists only in the answer to the request that created it; the
database, the API, events and the load balancers see only ``key_hash`` and ``prefix``.

A key is ``ssk_`` plus 43 URL-safe characters. Its ``prefix`` (the first 12 characters,
48 of its 256 bits) is what `serve keys list` shows so an operator can tell keys apart.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.clock import Clock
from controller.db import ApiKeyRow, Database
from controller.db.replica_store import add_event
from controller.services import get_or_404

KEY_BYTES = 32
PREFIX_CHARS = 12
MAX_KEYS_PER_SERVICE = 100
"""Kept small: every load balancer request compares against each hash (constant time)."""


class TooManyKeys(Exception):
    pass


class NoSuchKey(Exception):
    pass


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``value`` is shown once and never stored."""

    row: ApiKeyRow
    value: str


def key_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def create_key(db: Database, clock: Clock, service: str, label: str) -> NewKey:
    value = "ssk_" + secrets.token_urlsafe(KEY_BYTES)
    now = clock.now()
    with db.session() as s:
        row = get_or_404(s, service)
        count = s.scalar(select(func.count()).where(ApiKeyRow.service_id == row.id)) or 0
        if count >= MAX_KEYS_PER_SERVICE:
            raise TooManyKeys(
                f"{service} already has {count} API keys (the most allowed); revoke one "
                f"with `serve keys revoke {service} KEY_ID`"
            )
        key = ApiKeyRow(
            service_id=row.id,
            key_hash=key_hash(value),
            prefix=value[:PREFIX_CHARS],
            label=label,
            created_at=now,
        )
        s.add(key)
        s.flush()
        add_event(s, service, "api_key_created", _describe("created", key), now)
        return NewKey(key, value)


def list_keys(db: Database, service: str) -> list[ApiKeyRow]:
    with db.session() as s:
        return list(get_or_404(s, service).api_keys)


def revoke_key(db: Database, clock: Clock, service: str, key_id: int) -> tuple[ApiKeyRow, int]:
    """Delete the key; returns it and how many keys the service has left (with none left,
    its endpoint is open)."""
    with db.session() as s:
        row = get_or_404(s, service)
        key = s.get(ApiKeyRow, key_id)
        if key is None or key.service_id != row.id:
            raise NoSuchKey(
                f"{service} has no API key {key_id}; `serve keys list {service}` lists them"
            )
        s.delete(key)
        add_event(s, service, "api_key_revoked", _describe("revoked", key), clock.now())
        return key, len(active_hashes(s, row.id))


def active_hashes(session: Session, service_id: int) -> list[str]:
    """What the service's load balancers enforce (an empty list: the endpoint is open)."""
    query = select(ApiKeyRow.key_hash).where(ApiKeyRow.service_id == service_id)
    return sorted(session.scalars(query).all())


def _describe(what: str, key: ApiKeyRow) -> str:
    label = f" ({key.label})" if key.label else ""
    return f"API key {key.id} {key.prefix}...{label} {what}"
