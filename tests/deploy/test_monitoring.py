"""The Prometheus rules and the Grafana dashboard in deploy/: valid, and reading only metrics
that a real controller and a real load balancer expose."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.metric_names import SYNTHETIC, exposed_names, names_in_query
from tests.load_balancer.conftest import ProcessFactory
from tests.support.processes import ControllerProcess

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "spotserve.json"


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("SERVE_TEST_REQUIRE_PROMTOOL") == "1":
        pytest.fail("promtool is missing and SERVE_TEST_REQUIRE_PROMTOOL=1")
    pytest.skip("promtool is missing: apt-get install prometheus (CI installs it)")


def rule_queries() -> list[str]:
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    def walk(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["expr"]] if isinstance(node.get("expr"), str) else []
            return own + [q for value in node.values() for q in walk(value)]
        if isinstance(node, list):
            return [q for item in node for q in walk(item)]
        return []

    dashboard = json.loads(DASHBOARD.read_text())
    variables = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    label_values = [re.fullmatch(r"label_values\((.+), *\w+\)", v) for v in variables]
    assert all(label_values), variables
    return walk(dashboard["panels"]) + [m.group(1) for m in label_values if m]


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_example_scrape_config(tmp_path: Path) -> None:
    """The example names a token file that only exists where Prometheus runs: point it at
    one here (promtool checks that it exists)."""
    token = tmp_path / "token"
    token.write_text("x")
    config = SCRAPE_CONFIG.read_text().replace("/etc/prometheus/spotserve-token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(RULES, tmp_path / "alerts.yml")
    result = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_names_in_query_keeps_metrics_and_drops_functions_labels_and_ranges() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(x_bucket{service=~"$s", a="b(c)"}[5m])))'
        " / on (service) y unless z > 0 and time() - w offset 5m"
    )
    assert names_in_query(expr) == {"x_bucket", "y", "z", "w"}


def test_every_metric_the_rules_and_dashboard_read_is_exposed(
    sqlite_controller: ControllerProcess, lb_procs: ProcessFactory
) -> None:
    env = sqlite_controller.env
    lb = lb_procs.lb(
        *("--controller-url", env.url, "--service", "nothing-yet"),
        *("--token-file", str(env.home / "token")),
    )
    controller_page = httpx.get(f"{env.url}/metrics", headers=env.auth(), timeout=10)
    lb_page = httpx.get(f"{lb.url}/-/metrics", timeout=10)
    assert controller_page.status_code == lb_page.status_code == 200
    exposed = exposed_names(controller_page.text) | exposed_names(lb_page.text) | SYNTHETIC
    for source, queries in (("alerts.yml", rule_queries()), ("dashboard", dashboard_queries())):
        read = set().union(*(names_in_query(q) for q in queries))
        assert read, f"no metric found in the {source} queries"
        assert read <= exposed, f"{source} reads metrics nobody exposes: {read - exposed}"
