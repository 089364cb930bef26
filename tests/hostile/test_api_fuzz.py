"""The REST API fuzzed from its own OpenAPI document, against a real controller process.

Whatever schemathesis sends (valid and invalid bodies, odd paths and query values), with or
without the bearer token, the answer is a 2xx-4xx JSON body, never a 500 or a traceback.
The reconcile tick is an hour here, so a spec the fuzzer gets accepted never launches.

The document is built from `create_app` at collection (no I/O) so each operation is its own
test; `test_fuzzed_document_is_the_one_the_controller_serves` ties it to the live one.
(schemathesis' fixture-based loader needs a pytest private attribute gone in pytest 9.2.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from controller.app import create_app
from controller.settings import Settings
from tests.support.processes import ControllerProcess, Env, kill_everything_of

OPENAPI = create_app(Settings.from_env({"SERVE_HOME": str(Path("/nonexistent"))})).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)

FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    env = Env(
        home=root / "serve-home",
        database_url=f"sqlite:///{root / 'serve.db'}",
        extra={"SERVE_TICK_SECONDS": "3600"},
    )
    env.home.mkdir()
    proc = ControllerProcess(env).start()
    yield proc
    proc.kill()
    kill_everything_of(env.home)


def _answered_cleanly(case: Any, url: str, headers: dict[str, str]) -> None:
    response = case.call(base_url=url, headers=headers, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    assert "Traceback" not in response.text, case.as_curl_command(base_url=url)
    assert 'File "' not in response.text, case.as_curl_command(base_url=url)


def test_fuzzed_document_is_the_one_the_controller_serves(fuzzed: ControllerProcess) -> None:
    assert httpx.get(f"{fuzzed.env.url}/openapi.json", timeout=10).json() == OPENAPI


@schema.parametrize()
@FUZZ
def test_no_request_with_the_token_gets_a_server_error(
    case: Any, fuzzed: ControllerProcess
) -> None:
    _answered_cleanly(case, fuzzed.env.url, fuzzed.env.auth())


@schema.parametrize()
@FUZZ
def test_no_request_without_the_token_gets_a_server_error(
    case: Any, fuzzed: ControllerProcess
) -> None:
    _answered_cleanly(case, fuzzed.env.url, {})
