"""The dashboard at the controller's root URL, in a real browser (Debian's chromium driven
by Playwright: `tests/support/browser.py`), against a real controller with local replicas.

Each test looks at what a person would: the service and its replicas in their zones, the
chart, the log tail, a preemption in the timeline, the token prompt. Waits are on what the
page shows, never on fixed sleeps. The screenshots in docs/ come from here
(`SERVE_DASHBOARD_SCREENSHOTS=docs`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.browser import chromium, screenshot_dir
from tests.support.processes import ControllerProcess, Env, kill_everything_of

# Without playwright the `browser` fixture says what is missing: a skip, or a failure in CI.
with contextlib.suppress(ImportError):
    from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.slow

WAIT_MS = 60_000
# The run command prints markup first: the log tail must show it as text.
SPOT = """
name: chat
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 30, timeout_seconds: 2}}
  replica_policy:
    {{min_replicas: 2, max_replicas: 2, num_overprovision: 1, dynamic_ondemand_fallback: true,
      spot_placer: dynamic_fallback}}
resources: {{ports: 8080, use_spot: true}}
workdir: {workdir}
run: echo '<b id="injected">not markup</b>'; python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0"}}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def chat(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One controller for the module with `chat`: three spot replicas, one per zone. (It
    asks for the browser first so that a missing one skips before anything starts.)"""
    root = tmp_path_factory.mktemp("dashboard")
    env = Env(home=root / "serve-home", database_url=f"sqlite:///{root / 'serve.db'}")
    proc = ControllerProcess(env).start()
    try:
        spec = root / "chat.yaml"
        spec.write_text(SPOT.format(workdir=Path(__file__).parents[2] / "examples" / "hello"))
        out = env.serve("up", str(spec))
        assert out.returncode == 0, out.stdout + out.stderr
        yield env
    finally:
        proc.kill()
        kill_everything_of(env.home)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"the page's scripts failed: {errors}"


def shots(tmp_path: Path) -> Path:
    return screenshot_dir(tmp_path)


def test_a_service_appears_with_its_replicas_in_their_zones(
    chat: Env, page: Page, tmp_path: Path
) -> None:
    page.goto(chat.url)
    row = page.locator('#services tr[data-service="chat"]')
    expect(row).to_contain_text("READY", timeout=WAIT_MS)
    expect(row.locator("a")).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:\d+"))
    for zone in ("local-a", "local-b", "local-c"):
        spot_chips = page.locator(f'#zones [data-zone="{zone}"] .market-row').first.locator(
            '.chip[data-status="READY"]'
        )
        expect(spot_chips).to_have_count(1, timeout=WAIT_MS)
    expect(row).to_contain_text("3 spot · 0 on-demand")
    expect(page.locator('#market tr[data-zone="local-a"]')).to_contain_text("1 / unlimited")
    page.screenshot(path=shots(tmp_path) / "dashboard.png", full_page=True)


def test_the_chart_has_points(chat: Env, page: Page) -> None:
    page.goto(chat.url)
    chart = page.locator("#chart svg")
    expect(chart).to_have_attribute("data-samples", re.compile(r"^([2-9]|\d\d+)$"), timeout=WAIT_MS)
    expect(chart.locator("path.area-spot")).to_have_attribute("d", re.compile(r"^M.+ L.+Z$"))
    expect(chart.locator("path.cost")).to_have_attribute("d", re.compile(r"^M"))


def test_the_log_tail_shows_the_apps_output_as_text(chat: Env, page: Page) -> None:
    page.goto(chat.url)
    log = page.locator("#log")
    expect(log).to_contain_text("serving hello-1 on port", timeout=WAIT_MS)
    expect(log).to_contain_text('<b id="injected">not markup</b>')
    expect(page.locator("#injected")).to_have_count(0)


def test_tokens_and_cost_per_million_tokens_show_per_market(
    chat: Env, page: Page, tmp_path: Path
) -> None:
    """The whole path: answers' `usage` read by the service's load balancer, synced, kept,
    shown by the page and by `serve status`."""
    endpoint = chat.serve("status", "chat", "--endpoint").stdout.strip()
    client = openai.OpenAI(base_url=endpoint + "/v1", api_key="unused", max_retries=2)
    used = 0
    for n in range(6):
        answer = client.chat.completions.create(
            model="hello-1", messages=[{"role": "user", "content": f"question {n}"}]
        )
        assert answer.usage is not None
        used += answer.usage.total_tokens
    page.goto(chat.url)
    row = page.locator('#services tr[data-service="chat"]')
    expect(row.locator('[data-field="per-million"]')).to_have_text(
        re.compile(r"^\$\d"), timeout=WAIT_MS
    )
    expect(row.locator('[data-field="tokens-per-second"]')).to_have_text(re.compile(r"^\d"))
    spot = page.locator('#tokens tr[data-market="spot"]')
    expect(spot.locator(".per-million")).to_have_text(re.compile(r"^\$\d"))
    expect(page.locator('#tokens tr[data-market="all"]')).to_contain_text(f"{used:,}")
    page.locator("#tokens-card").screenshot(path=shots(tmp_path) / "dashboard-tokens.png")
    status = chat.serve("status", "chat")
    assert "Tokens (last 5 min)" in status.stdout, status.stdout
    assert f"{used:,}" in status.stdout


def test_a_preemption_shows_up_in_the_timeline(chat: Env, page: Page, tmp_path: Path) -> None:
    page.goto(chat.url)
    expect(page.locator('#zones .chip[data-status="READY"]')).to_have_count(3, timeout=WAIT_MS)
    out = chat.serve("market", "set", "local-a", "--spot-capacity", "0")
    assert out.returncode == 0, out.stderr

    preempted = page.locator('#events li[data-kind="replica_preempted"]')
    expect(preempted).to_have_count(1, timeout=WAIT_MS)
    expect(preempted).to_have_class(re.compile(r"\bpreempt\b"))
    expect(
        page.locator('#zones [data-zone="local-a"] .chip[data-status="PREEMPTED"]')
    ).to_have_count(1)
    expect(page.locator('#market tr[data-zone="local-a"]')).to_contain_text("0 / 0")
    # Spot comes back in the other zones; the chart shows the dip, the timeline the story.
    expect(page.locator('#zones .chip[data-status="READY"]')).to_have_count(3, timeout=WAIT_MS)
    page.locator("#notable").check()
    expect(page.locator("#events li:not(.preempt):not(.fallback):not(.bad)")).to_have_count(0)
    expect(preempted).to_have_count(1)
    expect(page.locator("#chart path.marker.preempt")).not_to_have_count(0)
    page.screenshot(path=shots(tmp_path) / "dashboard-preemption.png", full_page=True)


@pytest.fixture
def closed(browser: Browser, sqlite_env: Env) -> Iterator[Env]:
    """A controller with SERVE_READ_AUTH=1 and one service."""
    sqlite_env.extra["SERVE_READ_AUTH"] = "1"
    proc = ControllerProcess(sqlite_env).start()
    spec = {
        "service": {"readiness_probe": "/health", "replicas": 1},
        "resources": {"ports": 8080},
        "run": "sleep 600",
    }
    created = httpx.post(
        f"{sqlite_env.url}/api/v1/services",
        json={"name": "private", "spec": spec},
        headers=sqlite_env.auth(),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    yield sqlite_env
    proc.kill()


def test_with_read_auth_the_page_asks_for_the_token_then_shows_the_service(
    closed: Env, page: Page, tmp_path: Path
) -> None:
    page.goto(closed.url)
    dialog = page.locator("#login")
    expect(dialog).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('#services tr[data-service="private"]')).to_have_count(0)
    page.screenshot(path=shots(tmp_path) / "dashboard-token.png")

    page.locator("#token").fill(closed.token[:-1])
    page.locator("#login button[type=submit]").click()
    expect(page.locator("#login-error")).to_have_text("That token was refused.", timeout=WAIT_MS)

    page.locator("#token").fill(closed.token)
    page.locator("#login button[type=submit]").click()
    expect(dialog).to_be_hidden()
    expect(page.locator('#services tr[data-service="private"]')).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("sessionStorage.getItem('spotserve.token')") == closed.token
