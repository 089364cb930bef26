"""Prometheus metrics, read from the database at scrape time (so every controller replica
reports the same numbers and nothing is double counted after a restart)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from controller.api.views import tokens_view
from controller.db import Database, EventRow, ReplicaRow, ServiceRow
from controller.db.token_counts import TokenFigures, token_figures
from controller.service_status import endpoint_problem
from policies.adaptive_hedge import protecting


class ControllerCollector(Collector):
    def __init__(self, db: Database, now: Callable[[], float] = time.time):
        self.db = db
        self.now = now

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        replicas = GaugeMetricFamily(
            "serve_replicas",
            "Replicas by service, status, market and zone",
            labels=["service", "status", "market", "cloud", "zone"],
        )
        target = GaugeMetricFamily("serve_target_replicas", "Target replicas", labels=["service"])
        cost = GaugeMetricFamily(
            "serve_cost_per_hour_dollars",
            "Current hourly cost of live instances",
            labels=["service"],
        )
        services = GaugeMetricFamily("serve_services", "Services by status", labels=["status"])
        endpoint_down = GaugeMetricFamily(
            "serve_endpoint_down",
            "1 while the service's load balancer cannot start (its port is taken), else 0",
            labels=["service"],
        )
        on_demand_only = GaugeMetricFamily(
            "serve_on_demand_only",
            "1 while the service runs on on-demand only because its recent outage is above "
            "its availability_target, else 0",
            labels=["service"],
        )
        preemptions = CounterMetricFamily(
            "serve_preemptions", "Spot preemptions seen", labels=["service"]
        )
        tokens = CounterMetricFamily(
            "serve_tokens",
            "Tokens answers reported in their OpenAI usage, by market and kind",
            labels=["service", "market", "kind"],
        )
        token_rate = GaugeMetricFamily(
            "serve_tokens_per_second",
            "Tokens per second over the last 5 minutes, by market",
            labels=["service", "market"],
        )
        per_million = GaugeMetricFamily(
            "serve_usd_per_million_tokens",
            "Cost per hour now over tokens per hour (absent while no token came), by market",
            labels=["service", "market"],
        )
        now = self.now()
        with self.db.session() as s:
            counts: Counter[tuple[str, ...]] = Counter()
            hourly: dict[str, float] = {}
            by_market: dict[str, dict[str, float]] = {}
            names = dict(s.execute(select(ServiceRow.id, ServiceRow.name)).all())
            for r in s.scalars(select(ReplicaRow)).all():
                svc = names.get(r.service_id, "?")
                market = "spot" if r.spot else "on_demand"
                counts[(svc, r.status, market, r.cloud, r.zone)] += 1
                if r.instance_id and r.terminated_at is None:
                    hourly[svc] = hourly.get(svc, 0.0) + r.price_per_hour
                    markets = by_market.setdefault(svc, {})
                    markets[market] = markets.get(market, 0.0) + r.price_per_hour
            for labels, n in counts.items():
                replicas.add_metric(list(labels), n)
            status_counts: Counter[str] = Counter()
            figures = token_figures(s, None, now)
            for row in s.scalars(select(ServiceRow)).all():
                target.add_metric([row.name], row.target_replicas)
                cost.add_metric([row.name], hourly.get(row.name, 0.0))
                status_counts[row.status] += 1
                down = endpoint_problem(row.status_reason or "") is not None
                endpoint_down.add_metric([row.name], int(down))
                on_demand_only.add_metric([row.name], int(protecting(row.policy_state or {})))
                found = figures.get(row.id, TokenFigures())
                for market, (prompt, completion) in found.total.items():
                    tokens.add_metric([row.name, market, "prompt"], prompt)
                    tokens.add_metric([row.name, market, "completion"], completion)
                view = tokens_view(
                    found, by_market.get(row.name, {}), row.cost_so_far, now - row.created_at
                )
                for market, figure in view.markets.items():
                    token_rate.add_metric([row.name, market], figure.tokens_per_second)
                    if figure.usd_per_million_tokens is not None:
                        per_million.add_metric([row.name, market], figure.usd_per_million_tokens)
            for status, n in status_counts.items():
                services.add_metric([status], n)
            pre = s.execute(
                select(EventRow.service_name, func.sum(EventRow.count))
                .where(EventRow.kind == "replica_preempted")
                .group_by(EventRow.service_name)
            ).all()
            for name, n in pre:
                preemptions.add_metric([name], n)
        yield from (replicas, target, cost, services, endpoint_down, on_demand_only, preemptions)
        yield from (tokens, token_rate, per_million)
