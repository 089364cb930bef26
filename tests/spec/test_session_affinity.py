"""`load_balancing_policy: session_affinity` and `service.session_header` (our extension)."""

from __future__ import annotations

import pytest

from controller.spec import SpecError, load_spec_text

SPEC = """\
service:
  readiness_probe: /health
  load_balancing_policy: {policy}
{extra}resources:
  ports: 8080
run: python app.py
"""


def spec_text(policy: str = "session_affinity", extra: str = "") -> str:
    return SPEC.format(policy=policy, extra=extra)


def test_session_affinity_is_accepted_with_the_default_header() -> None:
    service = load_spec_text(spec_text()).service
    assert service.load_balancing_policy == "session_affinity"
    assert service.session_header == "X-Session-Id"


def test_a_custom_session_header_is_kept() -> None:
    service = load_spec_text(spec_text(extra="  session_header: X-Conversation\n")).service
    assert service.session_header == "X-Conversation"


@pytest.mark.parametrize("bad", ["'X Session'", "'X-Session:'", "''", "'Sessión'"])
def test_a_session_header_that_is_not_a_header_name_is_refused(bad: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text(spec_text(extra=f"  session_header: {bad}\n"))
    assert "service.session_header" in str(err.value)
    assert "not a header name" in str(err.value)
