"""A per-accelerator target reaches the tick: the autoscaler counts the replicas' capacity.

Local replicas run no accelerator the catalog can name, so each counts as the smallest entry
(controller/capacity.py): 12 req/s with `{A100: 10, L4: 4}` wants 3 of them.
"""

from __future__ import annotations

from controller.db import ServiceRow
from tests.replica_manager.conftest import APP, Harness

SPEC = f"""
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 20, timeout_seconds: 2}}
  load_balancing_policy: instance_aware_least_load
  replica_policy:
    min_replicas: 1
    max_replicas: 5
    target_qps_per_replica: {{A100: 10, L4: 4}}
    upscale_delay_seconds: 0
resources:
  ports: 8080
  accelerators: {{A100: 1, L4: 1}}
run: python3 {APP}
"""


def _target(harness: Harness) -> int:
    row = harness.service()
    assert isinstance(row, ServiceRow)
    return row.target_replicas


def test_the_tick_scales_to_the_capacity_the_rate_needs(harness: Harness) -> None:
    harness.create(text=SPEC)
    now = harness.rt.clock.now()
    harness.rt.rates.record("svc", 720, 60.0, now)  # 12 req/s over the last minute
    harness.tick()
    assert _target(harness) == 3
    assert len(harness.replicas()) == 3
