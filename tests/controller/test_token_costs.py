"""Tokens per second and dollars per million tokens, per service and per market.

The runtime runs in-process without its schedule on a clock the test moves; replica rows are
walked through the lifecycle as the replica manager does (a spot one at $1/h, an on-demand one
at $3/h); tokens arrive the way load balancers send them, through the lb-sync route of the
FastAPI app, against SQLite and Postgres.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.db.token_counts import trim_token_counts
from controller.runtime import ControllerRuntime
from controller.services import create_service
from controller.spec import load_spec_text
from policies.types import Location
from replica_manager.records import ReplicaStatus as S
from tests.controller.runtimes import in_process_runtime

SPEC = """
service: {readiness_probe: /health, replicas: 2}
resources: {ports: 8080, use_spot: true}
run: python3 -m http.server 8080
"""
ZONE = Location("local", "local", "local-a")
CREATED = 1_000_000.0


class ManualClock:
    def __init__(self) -> None:
        self.at = CREATED

    def now(self) -> float:
        return self.at


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def rt(db_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[ControllerRuntime]:
    with in_process_runtime(db_url, tmp_path / "home", clock) as runtime:
        yield runtime


@pytest.fixture
def client(rt: ControllerRuntime) -> TestClient:
    client = TestClient(create_app(rt.settings, rt))
    client.headers["Authorization"] = f"Bearer {rt.token}"
    return client


def _ready(rt: ControllerRuntime, spot: bool, price: float, n: int) -> str:
    assert rt.reconciler is not None
    store = rt.reconciler.store
    record = store.create_intent("llm", 1, ZONE, spot, "local-process", price, 3.0)
    url = f"http://10.0.0.{n}:8080"
    record = store.transition(record, S.PROVISIONING, "test", instance_id=f"i-{n}")
    record = store.transition(record, S.STARTING, "test", url=url)
    store.transition(record, S.READY, "test")
    return url


def _sync(client: TestClient, tokens: dict[str, list[int]]) -> None:
    answer = client.post("/api/v1/services/llm/lb-sync", json={"tokens": tokens, "lb_id": "a"})
    assert answer.status_code == 200, answer.text


def _service(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/api/v1/services/llm").json())


def _metrics(client: TestClient) -> dict[str, float]:
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(("serve_tokens", "serve_usd_per_million")) and 'service="llm"' in line:
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_each_market_gets_its_own_tokens_rate_and_price_per_million(
    rt: ControllerRuntime, client: TestClient, clock: ManualClock
) -> None:
    create_service(rt.db, rt.settings, rt.clock, "llm", load_spec_text(SPEC))
    spot = _ready(rt, True, 1.0, 1)
    on_demand = _ready(rt, False, 3.0, 2)
    clock.at = CREATED + 600  # the window is the last 5 minutes
    _sync(client, {spot: [100_000, 80_000], on_demand: [20_000, 10_000]})
    clock.at += 100
    _sync(client, {spot: [60_000, 60_000]})

    tokens = _service(client)["tokens"]
    assert tokens["window_seconds"] == 300
    spot_view, od_view = tokens["markets"]["spot"], tokens["markets"]["on_demand"]
    assert spot_view["tokens_per_second"] == pytest.approx(300_000 / 300)
    assert spot_view["completion_tokens_per_second"] == pytest.approx(140_000 / 300)
    assert spot_view["cost_per_hour"] == 1.0
    # $1/h over 1,000 tokens/s = 3.6M tokens/h: $0.2778 per million.
    assert spot_view["usd_per_million_tokens"] == pytest.approx(1 / 3.6, abs=1e-4)
    assert od_view["tokens_per_second"] == pytest.approx(100)
    assert od_view["usd_per_million_tokens"] == pytest.approx(3 / 0.36, abs=1e-3)
    assert tokens["tokens_per_second"] == pytest.approx(330_000 / 300)
    assert tokens["usd_per_million_tokens"] == pytest.approx(4 / (1100 * 3600) * 1e6, abs=1e-3)
    assert tokens["tokens_so_far"] == 330_000

    metrics = _metrics(client)
    assert metrics['serve_tokens_total{kind="completion",market="spot",service="llm"}'] == 140_000
    assert metrics['serve_tokens_total{kind="prompt",market="on_demand",service="llm"}'] == 20_000
    per_million = metrics['serve_usd_per_million_tokens{market="spot",service="llm"}']
    assert per_million == pytest.approx(spot_view["usd_per_million_tokens"])
    listed = {s["name"]: s for s in client.get("/api/v1/services").json()}["llm"]["tokens"]
    assert listed == tokens


def test_rates_leave_the_window_but_totals_stay(
    rt: ControllerRuntime, client: TestClient, clock: ManualClock
) -> None:
    create_service(rt.db, rt.settings, rt.clock, "llm", load_spec_text(SPEC))
    spot = _ready(rt, True, 1.0, 1)
    clock.at = CREATED + 30
    _sync(client, {spot: [300, 600]})
    young = _service(client)["tokens"]
    assert young["window_seconds"] == 30, "a young service's rate is over its age"
    assert young["tokens_per_second"] == pytest.approx(30)
    first_listing = client.get("/api/v1/services").json()
    assert first_listing[0]["tokens"]["tokens_so_far"] == 900
    clock.at += 1_000
    with rt.db.session() as s:
        trim_token_counts(s, clock.at)  # as each tick does: rows no window reads again
    later = _service(client)["tokens"]
    assert later["tokens_per_second"] == 0 and later["usd_per_million_tokens"] is None
    assert later["tokens_so_far"] == 900
    assert client.get("/api/v1/services").json()[0]["tokens"] == later


def test_tokens_of_a_url_the_controller_does_not_know_are_kept_apart(
    rt: ControllerRuntime, client: TestClient, clock: ManualClock
) -> None:
    create_service(rt.db, rt.settings, rt.clock, "llm", load_spec_text(SPEC))
    clock.at = CREATED + 300
    _sync(client, {"http://10.9.9.9:8080": [10, 20]})
    unknown = _service(client)["tokens"]["markets"]["unknown"]
    assert unknown["tokens_so_far"] == 30 and unknown["usd_per_million_tokens"] is None
    client.get("/api/v1/services")
    listed = client.get("/api/v1/services").json()[0]["tokens"]  # the kept view, moved on
    assert listed["markets"]["unknown"] == unknown


@pytest.mark.parametrize(
    "tokens",
    [
        {"http://a:1": [-1, 2]},
        {"http://a:1": [1]},
        {"http://a:1": [1, "x"]},
        {"http://a:1": [1, 10**16]},
    ],
)
def test_bad_token_reports_are_refused_naming_the_field(
    rt: ControllerRuntime, client: TestClient, tokens: dict[str, Any]
) -> None:
    create_service(rt.db, rt.settings, rt.clock, "llm", load_spec_text(SPEC))
    answer = client.post("/api/v1/services/llm/lb-sync", json={"tokens": tokens})
    assert answer.status_code == 422
    assert "tokens" in answer.text
    assert _service(client)["tokens"]["tokens_so_far"] == 0


def test_a_report_sent_again_after_its_answer_was_lost_counts_once(
    rt: ControllerRuntime, client: TestClient, clock: ManualClock
) -> None:
    create_service(rt.db, rt.settings, rt.clock, "llm", load_spec_text(SPEC))
    spot = _ready(rt, True, 1.0, 1)
    clock.at = CREATED + 600
    report = {"lb_id": "a", "seq": 7, "request_count": 60, "window_seconds": 60.0}
    for _ in range(3):  # the load balancer heard no answer twice
        answer = client.post(
            "/api/v1/services/llm/lb-sync", json={**report, "tokens": {spot: [1_000, 500]}}
        )
        assert answer.status_code == 200, answer.text
    assert _service(client)["tokens"]["tokens_so_far"] == 1_500
    assert rt.rates.qps("llm", clock.at) == pytest.approx(1.0)  # 60 requests over 60 s

    nxt = {**report, "seq": 8, "tokens": {spot: [10, 5]}}
    assert client.post("/api/v1/services/llm/lb-sync", json=nxt).status_code == 200
    assert _service(client)["tokens"]["tokens_so_far"] == 1_515
    other = {**report, "lb_id": "b", "tokens": {spot: [1, 1]}}  # another load balancer's 7
    assert client.post("/api/v1/services/llm/lb-sync", json=other).status_code == 200
    assert _service(client)["tokens"]["tokens_so_far"] == 1_517
