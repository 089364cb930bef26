"""A preemption notice on the local market, end to end: `serve market set ZONE
--spot-capacity 0 --notice N` warns the zone's spot replica N seconds ahead; the operator
sees it DRAINING with a `preemption_notice` event, its replacement is launched before the
replica is taken, and clients (plain and streamed) lose nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.load import SteadyClient, StreamingClient
from tests.support.processes import ControllerProcess, Env, wait_until

pytestmark = pytest.mark.slow

NOTICE = 12
SPOT = """
name: notice
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 30, timeout_seconds: 2}}
  replica_policy:
    {{min_replicas: 2, max_replicas: 2, num_overprovision: 0, spot_placer: dynamic_fallback}}
  load_balancing_policy: round_robin
resources: {{ports: 8080, use_spot: true}}
workdir: {workdir}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0.05"}}
"""


def status(env: Env) -> dict[str, Any]:
    out = env.serve("status", "notice", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def events(env: Env) -> list[dict[str, Any]]:
    url = f"{env.url}/api/v1/services/notice/events"
    return httpx.get(url, params={"limit": 1000}).json()  # type: ignore[no-any-return]


def test_a_noticed_spot_replica_drains_is_replaced_first_and_nobody_notices(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    spec = tmp_path / "notice.yaml"
    spec.write_text(SPOT.format(workdir=Path(__file__).parents[2] / "examples" / "hello"))
    out = env.serve("up", str(spec))
    assert out.returncode == 0, out.stdout + out.stderr
    ready = wait_until(
        lambda: (s := status(env))["ready_replicas"] == 2 and s, "2 spot replicas READY", 60
    )
    victim = ready["replicas"][0]
    zone = victim["zone"]
    plain = SteadyClient(ready["endpoint"], rate=10).start()
    streams = StreamingClient(ready["endpoint"], rate=5).start()
    try:
        wait_until(lambda: streams.completed >= 3, "streams flowing before the notice", 30)
        out = env.serve("market", "set", zone, "--spot-capacity", "0", "--notice", str(NOTICE))
        assert out.returncode == 0, out.stdout + out.stderr
        draining = wait_until(
            lambda: [r for r in status(env)["replicas"] if r["status"] == "DRAINING"],
            "a replica DRAINING",
            15,
            every=0.2,
        )
        assert {r["zone"] for r in draining} == {zone}
        human = env.serve("status", "notice")
        assert "DRAINING" in human.stdout and "left)" in human.stdout, human.stdout
        taken = wait_until(
            lambda: [r for r in status(env)["replicas"] if r["status"] == "PREEMPTED"],
            "the drained replica to be taken",
            NOTICE + 30,
            every=0.3,
        )
        wait_until(lambda: status(env)["ready_replicas"] == 2, "2 READY again", 60)
        sent_after = plain.sent + streams.sent
        wait_until(lambda: plain.sent + streams.sent > sent_after + 10, "traffic after", 30)
    finally:
        plain.stop()
        streams.stop()

    notices = [e for e in events(env) if e["kind"] == "preemption_notice"]
    assert len(notices) == 1 and notices[0]["data"]["lead_seconds"] == NOTICE
    kinds = [e["kind"] for e in events(env)]
    noticed_at = kinds.index("preemption_notice")
    assert "replica_launching" in kinds[noticed_at : kinds.index("replica_preempted")], (
        "the replacement was launched between the notice and the loss"
    )
    assert taken[0]["id"] == draining[0]["id"]
    assert plain.failures == [] and streams.failures == [], (plain.failures, streams.failures)
    assert streams.truncated == 0 and streams.completed > 10


def test_without_notice_a_cut_stream_resumes_on_another_replica_with_the_same_text(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    """`resume_streams: true`, and a zone taken with no warning: every stream the client
    reads ends with [DONE] and the text an uninterrupted replica gives."""
    env = sqlite_controller.env
    spec = tmp_path / "resume.yaml"
    text = SPOT.format(workdir=Path(__file__).parents[2] / "examples" / "hello")
    spec.write_text(text.replace("round_robin\n", "round_robin\n  resume_streams: true\n"))
    assert env.serve("up", str(spec)).returncode == 0
    ready = wait_until(
        lambda: (s := status(env))["ready_replicas"] == 2 and s, "2 spot replicas READY", 60
    )
    endpoint = ready["endpoint"]
    expected = _stream_text(endpoint)
    # Six clients, each always amid a stream, round robin: both replicas hold some.
    clients = [StreamingClient(endpoint, rate=20).start() for _ in range(6)]
    try:
        wait_until(lambda: all(c.completed >= 2 for c in clients), "streams flowing", 30)
        zone = ready["replicas"][0]["zone"]
        out = env.serve("market", "set", zone, "--spot-capacity", "0")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_until(lambda: status(env)["ready_replicas"] == 2, "2 READY again", 60)
        before = sum(c.completed for c in clients)
        wait_until(lambda: sum(c.completed for c in clients) > before + 10, "streams after", 30)
    finally:
        for c in clients:
            c.stop()
    metrics = httpx.get(f"{endpoint}/-/metrics", timeout=10).text
    resumed = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("lb_stream_resumes_total")
    )
    assert resumed >= 1, "the preemption cut at least one stream, and it was resumed"
    for c in clients:
        assert c.truncated == 0 and c.failures == [], c.failures
        assert c.texts == {expected}, "resumed streams read like uninterrupted ones"


def _stream_text(endpoint: str) -> str:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    parts = []
    with httpx.stream("POST", f"{endpoint}/v1/chat/completions", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def test_every_spot_zone_noticed_at_once_keeps_serving_on_the_draining_replicas(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    """No READY replica is left while the on-demand fallback starts: the draining ones keep
    taking requests until shortly before the cloud takes them, so nobody gets a 503."""
    env = sqlite_controller.env
    spec = tmp_path / "all.yaml"
    text = SPOT.format(workdir=Path(__file__).parents[2] / "examples" / "hello")
    fallback = "spot_placer: dynamic_fallback, dynamic_ondemand_fallback: true}"
    spec.write_text(text.replace("spot_placer: dynamic_fallback}", fallback))
    assert fallback in spec.read_text()
    assert env.serve("up", str(spec)).returncode == 0
    ready = wait_until(
        lambda: (s := status(env))["ready_replicas"] == 2 and s, "2 spot replicas READY", 60
    )
    plain = SteadyClient(ready["endpoint"], rate=20).start()
    try:
        for zone in ("local-a", "local-b", "local-c"):
            out = env.serve("market", "set", zone, "--spot-capacity", "0", "--notice", "10")
            assert out.returncode == 0, out.stdout + out.stderr
        wait_until(
            lambda: (
                sum(r["status"] == "READY" and not r["spot"] for r in status(env)["replicas"]) == 2
            ),
            "2 on-demand replicas READY",
            60,
        )
        sent = plain.sent
        wait_until(lambda: plain.sent > sent + 20, "traffic on the on-demand replicas", 30)
    finally:
        plain.stop()
    assert plain.failures == [], plain.failures[:5]
