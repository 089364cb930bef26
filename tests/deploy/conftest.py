"""Real processes for the deploy tests: load balancers that follow a real controller."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.load_balancer.conftest import ProcessFactory


@pytest.fixture
def lb_procs() -> Iterator[ProcessFactory]:
    factory = ProcessFactory()
    yield factory
    factory.stop_all()
