"""`session_affinity` end to end: a real load balancer in front of real replicas that say
which of them answered (tests/load_balancer/servers.py).

Busy replicas are made busy with ``/hold`` requests that stay in flight until the test
releases them, so a spill-over is read off the replicas, never inferred from timing.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until
from tests.load_balancer.servers import FakeController

SESSIONS = 30
TURNS = 6


def _standalone(procs: ProcessFactory, backends: list[Proc], *extra: str) -> Proc:
    urls = ",".join(b.url for b in backends)
    return procs.lb("--replicas", urls, "--policy", "session_affinity", *extra)


def _turns(lb: Proc, session: str, header: str = "X-Session-Id") -> list[str]:
    """One conversation: TURNS requests in a row on one keep-alive connection."""
    with httpx.Client(base_url=lb.url, timeout=10, headers={header: session}) as client:
        return [client.get("/chat").json()["replica"] for _ in range(TURNS)]


def _home_shares(lb: Proc, header: str = "X-Session-Id") -> tuple[list[float], Counter[str]]:
    """Run SESSIONS conversations, 6 at a time; per session, the share of its turns its
    most used replica answered, and how many sessions each replica was home to."""
    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(lambda i: _turns(lb, f"user-{i}", header), range(SESSIONS)))
    counts = [Counter(run).most_common(1)[0] for run in runs]
    return [n / TURNS for _, n in counts], Counter(name for name, _ in counts)


def test_sessions_stick_to_their_replica_under_concurrent_load(procs: ProcessFactory) -> None:
    # c = 3: with 6 requests in flight over 3 replicas the bound, ceil(3 * 6 / 3) = 6, is
    # never reached, so every turn of every session goes home.
    backends = [procs.backend(name) for name in "ABC"]
    lb = _standalone(procs, backends, "--affinity-balance-factor", "3")
    shares, homes = _home_shares(lb)
    assert shares == [1.0] * SESSIONS
    assert set(homes) == {"A", "B", "C"}, homes


def test_with_the_default_factor_most_turns_still_go_home(procs: ProcessFactory) -> None:
    # c = 1.25 with 6 in flight over 3 replicas: bound ceil(1.25 * 6 / 3) = 3, so a replica
    # that is home to 3 of the running sessions passes the next turn on (least_load would
    # keep about a third of turns home).
    backends = [procs.backend(name) for name in "ABC"]
    lb = _standalone(procs, backends)
    shares, homes = _home_shares(lb)
    assert sum(shares) / SESSIONS >= 0.7, shares
    assert set(homes) == {"A", "B", "C"}, homes


def test_requests_without_a_session_spread_by_least_load(procs: ProcessFactory) -> None:
    backends = [procs.backend(name) for name in "AB"]
    lb = _standalone(procs, backends)
    with httpx.Client(base_url=lb.url, timeout=10) as client:
        answered = Counter(client.get("/chat").json()["replica"] for _ in range(20))
    assert answered == {"A": 10, "B": 10}


def _held(backend: Proc) -> int:
    return int(httpx.get(backend.url + "/stats").json()["in_progress"])


def test_a_session_whose_replica_is_held_busy_spills_over(procs: ProcessFactory) -> None:
    backends = {name: procs.backend(name) for name in "AB"}
    lb = _standalone(procs, list(backends.values()))
    session = {"X-Session-Id": "long-conversation"}
    home = httpx.get(lb.url + "/chat", headers=session).json()["replica"]
    other = "B" if home == "A" else "A"
    holds = [
        threading.Thread(target=lambda: httpx.get(lb.url + "/hold", headers=session, timeout=30))
        for _ in range(2)
    ]
    for thread in holds:
        thread.start()
    # Two in flight on the home replica, none elsewhere: bound = ceil(1.25 * 3 / 2) = 2.
    wait_until(lambda: _held(backends[home]) == 2, "both slow requests on the home replica")
    answer = httpx.get(lb.url + "/chat", headers=session, timeout=5).json()
    assert answer["replica"] == other
    httpx.post(backends[home].url + "/release")
    for thread in holds:
        thread.join(30)
    assert httpx.get(lb.url + "/chat", headers=session).json()["replica"] == home


def test_the_controller_names_the_session_header(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    backends = [procs.backend(name) for name in "ABC"]
    controller.ready_replicas = [b.url for b in backends]
    controller.policy = "session_affinity"
    controller.session_header = "x-conversation"
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token_file)]
    lb = procs.lb(
        *flags,
        "--sync-interval",
        "0.1",
        "--workers",
        "2",
        "--affinity-balance-factor",
        "3",
        wait_ready=3,
    )
    shares, homes = _home_shares(lb, header="X-Conversation")
    assert shares == [1.0] * SESSIONS
    assert set(homes) == {"A", "B", "C"}, homes
