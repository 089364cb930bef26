"""SkyPilot's own kinds of service YAML parse, with SkyPilot's defaults filled in."""

from __future__ import annotations

from controller.spec import load_spec_text

HTTP_SERVER = """
service:
  readiness_probe: /health
  replicas: 2
resources:
  ports: 8081
  cpus: 2+
workdir: examples/serve/http_server
run: python3 server.py --port 8081
"""

VLLM = """
envs:
  MODEL_NAME: meta-llama/Llama-3.1-8B-Instruct
  HF_TOKEN: hf_secret_value
service:
  readiness_probe:
    path: /v1/chat/completions
    post_data:
      model: $MODEL_NAME
      messages:
        - role: user
          content: Hello! What is your name?
      max_tokens: 1
    initial_delay_seconds: 1800
    headers:
      Authorization: Bearer probe
  replicas: 2
resources:
  accelerators: {L4: 1, A10G: 1}
  ports: 8000
  disk_tier: best
setup: pip install vllm==0.6.3
run: |
  vllm serve $MODEL_NAME --host 0.0.0.0 --port 8000
"""

ANY_OF = """
service:
  readiness_probe: /v1/models
  replica_policy:
    min_replicas: 1
    max_replicas: 4
    target_qps_per_replica: 2.5
resources:
  accelerators: {L4:8, A10G:8, A100:4}
  use_spot: true
  any_of:
    - cloud: aws
      region: us-east-1
    - cloud: gcp
      region: us-central1
    - infra: azure/eastus
  ports: 8080
run: python -m server
"""

FALLBACK = """
service:
  readiness_probe: /health
  replica_policy:
    min_replicas: 2
    max_replicas: 3
    target_qps_per_replica: 1
    base_ondemand_fallback_replicas: 1
    dynamic_ondemand_fallback: true
    spot_placer: dynamic_fallback
  load_balancing_policy: round_robin
resources:
  ports: 8081
  cpus: 2+
  use_spot: true
run: python3 server.py
"""


def test_http_server_example_gets_skypilot_defaults() -> None:
    spec = load_spec_text(HTTP_SERVER)
    probe = spec.service.readiness_probe
    policy = spec.service.policy
    assert (probe.path, probe.initial_delay_seconds, probe.timeout_seconds) == ("/health", 1200, 15)
    assert (policy.min_replicas, policy.max_replicas) == (2, 2)
    assert (policy.upscale_delay_seconds, policy.downscale_delay_seconds) == (300, 1200)
    assert spec.service.load_balancing_policy == "least_load"
    assert spec.port == 8081 and spec.any_spot is False


def test_vllm_probe_posts_data_with_headers() -> None:
    spec = load_spec_text(VLLM)
    probe = spec.service.readiness_probe
    assert isinstance(probe.post_data, dict) and probe.post_data["max_tokens"] == 1
    assert probe.headers == {"Authorization": "Bearer probe"}
    assert probe.initial_delay_seconds == 1800
    assert spec.resources.accelerators == {"L4": 1, "A10G": 1}


def test_secret_looking_envs_are_redacted_in_the_normalised_spec() -> None:
    spec = load_spec_text(VLLM)
    assert spec.redacted()["envs"]["HF_TOKEN"] == "<redacted>"
    assert spec.redacted()["envs"]["MODEL_NAME"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert spec.replica_envs()["HF_TOKEN"] == "hf_secret_value"


def test_any_of_regions_and_accelerator_set_become_candidate_requests() -> None:
    spec = load_spec_text(ANY_OF)
    assert spec.resources.accelerators == {"L4": 8, "A10G": 8, "A100": 4}
    requests = spec.resource_requests()
    places = [(r.places[0].cloud, r.places[0].region) for r in requests]
    assert places == [("aws", "us-east-1"), ("gcp", "us-central1"), ("azure", "eastus")]
    assert all(r.use_spot for r in requests)
    assert [str(a) for a in requests[0].accelerators] == ["L4:8", "A10G:8", "A100:4"]
    assert spec.service.policy.autoscaling


def test_fallback_options_reach_the_placement_config() -> None:
    spec = load_spec_text(FALLBACK)
    config = spec.placement_config()
    assert config.use_spot and config.dynamic_ondemand_fallback
    assert config.base_ondemand_fallback_replicas == 1
    assert config.num_overprovision == 1  # SkyPilot's default with the dynamic_fallback placer
    assert spec.service.load_balancing_policy == "round_robin"


def test_accelerator_forms_normalise_to_one_mapping() -> None:
    base = "service: {readiness_probe: /}\nresources: {ports: 80, accelerators: %s}\nrun: x"
    assert load_spec_text(base % "A100:4").resources.accelerators == {"A100": 4}
    assert load_spec_text(base % "[A100, 'H100:8']").resources.accelerators == {
        "A100": 1,
        "H100": 8,
    }
    assert load_spec_text(base % "{V100: null}").resources.accelerators == {"V100": 1}


def test_probe_authorization_header_is_redacted_in_the_normalised_spec() -> None:
    spec = load_spec_text(VLLM)
    assert spec.redacted()["service"]["readiness_probe"]["headers"] == {
        "Authorization": "<redacted>"
    }
    assert spec.service.readiness_probe.headers["Authorization"] == "Bearer probe"


def test_a_service_without_a_readiness_probe_is_probed_at_the_root_as_skypilot_does() -> None:
    spec = load_spec_text(
        "service:\n  replicas: 2\nresources:\n  ports: 8080\nrun: python app.py\n"
    )
    probe = spec.service.readiness_probe
    assert (probe.path, probe.initial_delay_seconds, probe.timeout_seconds) == ("/", 1200, 15)
