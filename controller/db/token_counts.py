"""Tokens the load balancers read off OpenAI answers, kept per service and market.

A sync adds one row per market it saw tokens for (the recent rate reads a window of rows)
and adds the same figures to the market's running total, in the same transaction. The total
is added to in SQL, never read and written back, so several load balancers and controllers
writing at once lose nothing. A report sent again after its answer was lost carries the same
number and is recorded once (controller/api/routes_lb.py, load_balancer/controller_sync.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from controller.db.models import TokenCountRow, TokenTotalRow

Tokens = tuple[int, int]
"""(prompt, completion)"""
SPOT, ON_DEMAND, UNKNOWN = "spot", "on_demand", "unknown"
MARKETS = (SPOT, ON_DEMAND, UNKNOWN)
"""`unknown`: answers of a URL the controller has no replica for (a load balancer given
replicas by hand)."""
TOKEN_WINDOW_SECONDS = 300.0


@dataclass
class TokenFigures:
    """One service's tokens: in the window, and since it was created, by market."""

    window: dict[str, Tokens] = field(default_factory=dict)
    total: dict[str, Tokens] = field(default_factory=dict)


def record_tokens(s: Session, service_id: int, by_market: Mapping[str, Tokens], now: float) -> None:
    for market, (prompt, completion) in by_market.items():
        if not prompt and not completion:
            continue
        s.add(
            TokenCountRow(
                service_id=service_id, at=now, market=market, prompt=prompt, completion=completion
            )
        )
        _add_to_total(s, service_id, market, prompt, completion)


def _add_to_total(s: Session, service_id: int, market: str, prompt: int, completion: int) -> None:
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    table = TokenTotalRow.__table__
    insert = dialect.insert(table).values(
        service_id=service_id, market=market, prompt=prompt, completion=completion
    )
    s.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.service_id, table.c.market],
            set_={
                "prompt": table.c.prompt + insert.excluded.prompt,
                "completion": table.c.completion + insert.excluded.completion,
            },
        )
    )


def token_figures(
    s: Session, service_ids: Iterable[int] | None, now: float
) -> dict[int, TokenFigures]:
    """Figures of the given services (every service: None), one query per table."""
    counts, totals = TokenCountRow, TokenTotalRow
    recent = (
        select(
            counts.service_id, counts.market, func.sum(counts.prompt), func.sum(counts.completion)
        )
        .where(counts.at > now - TOKEN_WINDOW_SECONDS)
        .group_by(counts.service_id, counts.market)
    )
    overall = select(totals.service_id, totals.market, totals.prompt, totals.completion)
    if service_ids is not None:
        wanted = list(service_ids)
        recent = recent.where(counts.service_id.in_(wanted))
        overall = overall.where(totals.service_id.in_(wanted))
    figures: dict[int, TokenFigures] = {}
    for service_id, market, prompt, completion in s.execute(recent).all():
        figures.setdefault(service_id, TokenFigures()).window[market] = (
            int(prompt or 0),
            int(completion or 0),
        )
    for service_id, market, prompt, completion in s.execute(overall).all():
        figures.setdefault(service_id, TokenFigures()).total[market] = (prompt, completion)
    return figures


def trim_token_counts(s: Session, now: float) -> None:
    """Forget rows no window will read again (the totals keep what they added up to)."""
    s.execute(delete(TokenCountRow).where(TokenCountRow.at <= now - 2 * TOKEN_WINDOW_SECONDS))
