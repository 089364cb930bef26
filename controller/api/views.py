"""Rows -> API bodies. The only place that decides how a service looks from outside."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from controller.api.schemas import (
    CostPublic,
    EventPublic,
    MarketTokensPublic,
    ReplicaPublic,
    ServicePublic,
    TokensPublic,
)
from controller.costs import hourly_rates, hourly_rates_by_market
from controller.db import EventRow, ReplicaRow, ServiceRow
from controller.db.token_counts import TOKEN_WINDOW_SECONDS, TokenFigures, Tokens, token_figures
from controller.service_status import endpoint_problem
from controller.services import VersionView, latest_version
from controller.settings import Settings
from controller.spec import ServiceSpec
from policies.adaptive_hedge import on_demand_only
from replica_manager.lifecycle import ALIVE
from replica_manager.records import ReplicaStatus

_VIEW_FIELDS = (
    "replica_id",
    "version",
    "status",
    "status_reason",
    "cloud",
    "region",
    "zone",
    "spot",
    "url",
    "instance_type",
    "price_per_hour",
    "launched_at",
    "ready_at",
    "created_at",
    "drain_deadline",
)
LISTED_COLUMNS = (
    *_VIEW_FIELDS,
    "service_id",
    "instance_id",
    "terminated_at",
    "on_demand_price_per_hour",
)
"""What a service's view reads of its replicas (a listing selects only these)."""
_VIEWS: dict[tuple[Any, ...], ReplicaPublic] = {}
_VIEWS_MAX = 50_000


def replica_view(row: Any) -> ReplicaPublic:
    """Made once per distinct replica state: a fleet's listing is mostly replicas that have
    not changed since the last one, and building 2,000 validated models costs tens of ms."""
    key = tuple(getattr(row, name) for name in _VIEW_FIELDS)
    view = _VIEWS.get(key)
    if view is None:
        if len(_VIEWS) >= _VIEWS_MAX:
            _VIEWS.clear()
        view = _VIEWS[key] = _replica_view(row)
    return view


def _replica_view(row: Any) -> ReplicaPublic:
    return ReplicaPublic(
        id=row.replica_id,
        version=row.version,
        status=row.status,
        status_reason=row.status_reason,
        cloud=row.cloud,
        region=row.region,
        zone=row.zone,
        spot=row.spot,
        url=row.url,
        instance_type=row.instance_type,
        resources=resources_text(row),
        price_per_hour=row.price_per_hour,
        launched_at=row.launched_at,
        ready_at=row.ready_at,
        created_at=row.created_at,
        drain_deadline=row.drain_deadline,
    )


def resources_text(row: ReplicaRow) -> str:
    """SkyPilot's style: `1x AWS([Spot]g5.xlarge)`."""
    spot = "[Spot]" if row.spot else ""
    cloud = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}.get(row.cloud, row.cloud.capitalize())
    return f"1x {cloud}({spot}{row.instance_type or '?'})"


def service_view(
    row: Any,
    settings: Settings,
    now: float,
    version: VersionView | None = None,
    replicas: Sequence[Any] | None = None,
    tokens: TokenFigures | None = None,
) -> ServicePublic:
    """From an ORM row (its relationship gives the replicas) or a Core row of the services
    table with its `version` and `replicas` (a listing reads them all at once)."""
    version = version or latest_version(row)
    spec = version.spec
    replicas = row.replicas if replicas is None else replicas
    alive = [r for r in replicas if ReplicaStatus(r.status) in ALIVE]
    per_hour, od_per_hour = hourly_rates(replicas, row.target_replicas)
    return ServicePublic(
        name=row.name,
        status=row.status,
        status_reason=row.status_reason,
        version=row.version,
        endpoint=endpoint_url(settings, row.lb_port, spec) if row.lb_port else None,
        endpoint_down=endpoint_problem(row.status_reason or ""),
        created_at=row.created_at,
        uptime_seconds=now - row.ready_since if row.ready_since else None,
        target_replicas=row.target_replicas,
        ready_replicas=sum(1 for r in alive if r.status == ReplicaStatus.READY),
        spot_replicas=sum(1 for r in alive if r.spot),
        on_demand_replicas=sum(1 for r in alive if not r.spot),
        load_balancing_policy=spec.service.load_balancing_policy,
        policy=row.policy_name or ("spothedge" if spec.any_spot else "on_demand"),
        policy_state=row.policy_state or {},
        on_demand_only=on_demand_only(
            row.policy_state or {}, spec.placement_config().availability_target
        ),
        cost=cost_view(per_hour, od_per_hour, row.cost_so_far, row.on_demand_cost_so_far),
        tokens=tokens_view(
            tokens or TokenFigures(),
            hourly_rates_by_market(replicas),
            row.cost_so_far,
            now - row.created_at,
        ),
        replicas=[replica_view(r) for r in replicas],
        spec=version.redacted,
    )


def service_view_in(s: Session, row: ServiceRow, settings: Settings, now: float) -> ServicePublic:
    """One service's view with its tokens (read in the caller's session)."""
    return service_view(row, settings, now, tokens=token_figures(s, [row.id], now).get(row.id))


def endpoint_url(settings: Settings, port: int, spec: ServiceSpec) -> str:
    scheme = "https" if spec.service.tls is not None else "http"
    return f"{scheme}://{settings.public_host}:{port}"


def cost_view(
    per_hour: float, on_demand_per_hour: float, so_far: float, on_demand_so_far: float
) -> CostPublic:
    savings = 1 - so_far / on_demand_so_far if on_demand_so_far else None
    return CostPublic(
        per_hour=round(per_hour, 4),
        on_demand_per_hour=round(on_demand_per_hour, 4),
        so_far=round(so_far, 4),
        on_demand_so_far=round(on_demand_so_far, 4),
        savings_fraction=round(savings, 4) if savings is not None else None,
    )


def tokens_view(
    figures: TokenFigures, cost_per_hour: dict[str, float], cost_so_far: float, age: float
) -> TokensPublic:
    """Tokens/s over the window (or the service's age, if shorter: a young service's rate is
    not diluted by time it did not exist), and $ per million tokens: per market, that
    market's instances' cost per hour now over its tokens per hour."""
    window = max(1.0, min(TOKEN_WINDOW_SECONDS, age))
    markets = {
        m: _market_tokens(figures.window.get(m), figures.total.get(m), cost_per_hour.get(m), window)
        for m in sorted({*figures.window, *figures.total, *cost_per_hour})
    }
    whole = _market_tokens(
        _sum(figures.window.values()),
        _sum(figures.total.values()),
        sum(cost_per_hour.values()),
        window,
    )
    so_far = whole.tokens_so_far
    return TokensPublic(
        **whole.model_dump(),
        window_seconds=round(window, 1),
        usd_per_million_tokens_so_far=round(cost_so_far / so_far * 1e6, 4) if so_far else None,
        markets=markets,
    )


def _market_tokens(
    recent: Tokens | None, total: Tokens | None, cost_per_hour: float | None, window: float
) -> MarketTokensPublic:
    """`cost_per_hour` None: a market whose cost we do not know (`unknown`) has no price."""
    prompt, completion = recent or (0, 0)
    per_second = (prompt + completion) / window
    priced = per_second > 0 and cost_per_hour is not None
    cost_per_hour = cost_per_hour or 0.0
    return MarketTokensPublic(
        tokens_per_second=round(per_second, 3),
        prompt_tokens_per_second=round(prompt / window, 3),
        completion_tokens_per_second=round(completion / window, 3),
        cost_per_hour=round(cost_per_hour, 4),
        usd_per_million_tokens=(
            round(cost_per_hour / (per_second * 3600) * 1e6, 4) if priced else None
        ),
        tokens_so_far=sum(total or (0, 0)),
    )


def _sum(figures: Iterable[Tokens]) -> Tokens:
    pairs = list(figures)
    return sum(p for p, _ in pairs), sum(c for _, c in pairs)


def event_view(row: EventRow) -> EventPublic:
    return EventPublic(
        id=row.id,
        service=row.service_name,
        replica_id=row.replica_id,
        kind=row.kind,
        message=row.message,
        at=row.at,
        data=row.data or {},
        count=row.count,
        last_at=row.last_at,
    )
