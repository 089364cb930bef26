"""What moves the simulated market: trace replay faster than real time, a seeded random
model, and preemptions that follow."""

from __future__ import annotations

import json
from pathlib import Path

from provisioners.local import LocalProvisioner
from provisioners.local_market_driver import capacities
from tests.provisioners.contract_suite import CloudUnderTest
from tests.provisioners.test_local import A, LocalMarketControl

ZONES = ["local-a", "local-b"]


def trace_dir(tmp_path: Path, binary: bool = False) -> Path:
    folder = tmp_path / "trace"
    folder.mkdir()
    a = [1, 1, 0, 0] if binary else [4, 2, 0, 3]
    b = [0, 1, 1, 1] if binary else [1, 1, 1, 0]
    for name, data in (("us-east-1a_v100_1.json", a), ("us-east-1b_v100_1.json", b)):
        (folder / name).write_text(json.dumps({"metadata": {"gap_seconds": 300}, "data": data}))
    return folder


def test_trace_replays_at_the_speedup(tmp_path: Path) -> None:
    driver = {
        "mode": "trace",
        "path": str(trace_dir(tmp_path)),
        "speedup": 60.0,
        "offset_seconds": 0.0,
        "started_at": 1000.0,
    }
    assert capacities(driver, ZONES, 1000.0) == {"local-a": 4, "local-b": 1}
    assert capacities(driver, ZONES, 1005.0) == {"local-a": 2, "local-b": 1}  # 300 s in
    assert capacities(driver, ZONES, 1010.0) == {"local-a": 0, "local-b": 1}
    assert capacities(driver, ZONES, 1020.0) == {"local-a": 4, "local-b": 1}  # wrapped


def test_binary_trace_means_unlimited_or_none(tmp_path: Path) -> None:
    driver = {
        "mode": "trace",
        "path": str(trace_dir(tmp_path, binary=True)),
        "speedup": 1.0,
        "started_at": 0.0,
    }
    assert capacities(driver, ZONES, 0.0) == {"local-a": None, "local-b": 0}


def test_random_model_is_repeatable_for_a_seed_and_moves_over_time() -> None:
    driver = {
        "mode": "random",
        "seed": 7,
        "capacity": 3,
        "mean_available_seconds": 10.0,
        "mean_unavailable_seconds": 5.0,
        "started_at": 0.0,
    }
    timeline = [capacities(driver, ZONES, float(t)) for t in range(0, 200, 5)]
    assert timeline == [capacities(driver, ZONES, float(t)) for t in range(0, 200, 5)]
    seen = {c["local-a"] for c in timeline}
    assert seen == {0, 3}
    other = {**driver, "seed": 8}
    assert [capacities(other, ZONES, float(t)) for t in range(0, 200, 5)] != timeline


def test_manual_market_is_left_alone() -> None:
    assert capacities({"mode": "manual"}, ZONES, 123.0) == {}


def test_driven_capacity_drop_preempts_spot_replicas(tmp_path: Path) -> None:
    prov = LocalProvisioner(root=tmp_path / "local", log_root=tmp_path / "logs")
    cut = CloudUnderTest(prov, LocalMarketControl(prov), A, A, "local-process")
    try:
        inst = prov.launch(cut.request(A))
        state = prov.market.read()
        driver = {
            "mode": "trace",
            "path": str(trace_dir(tmp_path)),
            "speedup": 60.0,
            "offset_seconds": 0.0,
            "started_at": 0.0,
        }
        prov.market.write(type(state)(state.zones, driver))
        prov.drive_market(0.0)
        assert prov.get(inst.instance_id, inst.location).state == "running"  # type: ignore[union-attr]
        prov.drive_market(10.0)  # local-a capacity 0
        assert prov.get(inst.instance_id, inst.location).state == "preempted"  # type: ignore[union-attr]
        assert prov.market.read().zone("local-a").spot_capacity == 0  # type: ignore[union-attr]
    finally:
        for i in prov.list_owned():
            prov.terminate(i.instance_id, i.location)
