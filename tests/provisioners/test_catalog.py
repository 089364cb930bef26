"""The shipped catalog's data, its candidate ordering, and its answers to impossible requests."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from policies.types import Location
from provisioners.base import Accelerator, LocationFilter, ResourceRequest
from provisioners.catalog import (
    Catalog,
    CatalogEntry,
    CatalogError,
    NotOffered,
    default_catalog,
    load_catalog,
)
from provisioners.errors import InvalidRequest

ISSUE_ACCELERATORS = {
    ("aws", "V100:1"): "p3.2xlarge",
    ("aws", "T4:1"): "g4dn.xlarge",
    ("aws", "A10G:1"): "g5.xlarge",
    ("aws", "A10G:4"): "g5.12xlarge",
    ("aws", "A10G:8"): "g5.48xlarge",
    ("aws", "L4:1"): "g6.xlarge",
    ("aws", "L4:8"): "g6.48xlarge",
    ("aws", "A100:8"): "p4d.24xlarge",
    ("aws", "A100-80GB:8"): "p4de.24xlarge",
    ("aws", "H100:8"): "p5.48xlarge",
    ("gcp", "A100:8"): "a2-highgpu-8g",
    ("gcp", "A100-80GB:8"): "a2-ultragpu-8g",
    ("gcp", "H100:8"): "a3-highgpu-8g",
    ("gcp", "L4:1"): "g2-standard-4",
    ("gcp", "L4:8"): "g2-standard-96",
    ("gcp", "V100:1"): "n1-standard-8",
    ("gcp", "T4:1"): "n1-standard-4",
    ("azure", "A100:8"): "Standard_ND96asr_v4",
    ("azure", "A100-80GB:8"): "Standard_ND96amsr_A100_v4",
    ("azure", "H100:8"): "Standard_ND96isr_H100_v5",
    ("azure", "V100:1"): "Standard_NC6s_v3",
    ("azure", "T4:1"): "Standard_NC4as_T4_v3",
}


def acc(text: str) -> Accelerator:
    name, count = text.rsplit(":", 1)
    return Accelerator(name, int(count))


def gpus(*names: str, **kwargs: object) -> ResourceRequest:
    return ResourceRequest(accelerators=tuple(acc(n) for n in names), **kwargs)  # type: ignore[arg-type]


def row(cloud: str, zone: str, od: float, spot: float | None, accel: str = "L4:1") -> CatalogEntry:
    name, count = accel.split(":")
    region = zone[:-1] if cloud == "aws" else zone.rsplit("-", 1)[0]
    return CatalogEntry(cloud, f"{cloud}-{accel}", name, int(count), 4, 16, region, zone, od, spot)


@pytest.mark.parametrize(("cloud", "accelerator"), sorted(ISSUE_ACCELERATORS))
def test_issue_accelerator_is_offered_by_its_instance_type(cloud: str, accelerator: str) -> None:
    offers = default_catalog().offers(cloud, gpus(accelerator))
    assert {o.instance_type for o in offers} == {ISSUE_ACCELERATORS[cloud, accelerator]}


def test_every_gpu_type_is_offered_in_several_zones_across_regions() -> None:
    zones: dict[tuple[str, str], set[Location]] = defaultdict(set)
    for e in default_catalog().entries:
        zones[e.cloud, e.instance_type].add(e.location)
    for key, where in zones.items():
        assert len(where) >= 2, f"{key} is offered in fewer than two zones"
    gpu_types = {(e.cloud, e.instance_type) for e in default_catalog().entries if e.accelerator}
    multi_region = [k for k in gpu_types if len({z.region for z in zones[k]}) >= 2]
    assert len(multi_region) >= 0.9 * len(gpu_types)


def test_catalog_offers_cpu_only_types_on_every_cloud() -> None:
    for cloud in ("aws", "gcp", "azure"):
        offers = default_catalog().offers(cloud, ResourceRequest(cpus="4+"))
        assert offers, f"no CPU-only offer on {cloud}"


def test_spot_is_cheaper_than_on_demand_in_every_row() -> None:
    entries = default_catalog().entries
    bad = [e for e in entries if e.spot_price and e.spot_price >= e.on_demand_price]
    assert bad == []


def test_every_zone_belongs_to_its_region() -> None:
    bad = [e for e in default_catalog().entries if not e.zone.startswith(e.region)]
    assert bad == []


def test_an_instance_type_means_one_hardware_shape_everywhere() -> None:
    shapes: dict[tuple[str, str], set[tuple[str, int, float, float]]] = defaultdict(set)
    for e in default_catalog().entries:
        shapes[e.cloud, e.instance_type].add(
            (e.accelerator, e.accelerator_count, e.vcpus, e.memory_gib)
        )
    assert {k: v for k, v in shapes.items() if len(v) > 1} == {}


def test_instance_spec_reads_an_offer_back_into_its_hardware() -> None:
    spec = default_catalog().instance_spec("gcp", "n1-standard-8")
    assert spec is not None
    assert (spec.accelerator, spec.accelerator_count) == ("V100", 1)


def test_candidates_are_cheapest_spot_first_across_clouds() -> None:
    catalog = Catalog(
        [
            row("aws", "us-east-1a", 1.0, 0.50),
            row("gcp", "us-central1-a", 0.7, 0.30),
            row("azure", "eastus-1", 0.9, 0.40),
        ]
    )
    offers = catalog.candidates(gpus("L4:1", use_spot=True))
    assert [o.location.cloud for o in offers] == ["gcp", "azure", "aws"]


def test_on_demand_candidates_rank_by_on_demand_price() -> None:
    catalog = Catalog([row("aws", "us-east-1a", 1.0, 0.1), row("gcp", "us-central1-a", 0.7, 0.6)])
    assert catalog.candidates(gpus("L4:1"))[0].location.cloud == "gcp"


def test_spot_request_skips_zones_that_sell_no_spot() -> None:
    catalog = Catalog([row("aws", "us-east-1a", 1.0, None), row("aws", "us-east-1b", 2.0, 1.5)])
    zones = [o.location.zone for o in catalog.candidates(gpus("L4:1", use_spot=True))]
    assert zones == ["us-east-1b"]


def test_ordered_request_keeps_the_yaml_order_of_places() -> None:
    catalog = Catalog([row("aws", "us-east-1a", 1.0, 0.5), row("gcp", "us-central1-a", 0.7, 0.3)])
    request = gpus(
        "L4:1", ordered=True, places=(LocationFilter(cloud="aws"), LocationFilter(cloud="gcp"))
    )
    assert [o.location.cloud for o in catalog.candidates(request)] == ["aws", "gcp"]


def test_ordered_request_keeps_accelerator_order_within_a_place() -> None:
    catalog = Catalog(
        [row("aws", "us-east-1a", 3.0, 1.0, "A100:8"), row("aws", "us-east-1a", 1.0, 0.5, "L4:1")]
    )
    offers = catalog.candidates(gpus("A100:8", "L4:1", ordered=True))
    assert [o.instance_type for o in offers] == ["aws-A100:8", "aws-L4:1"]


def test_candidates_only_come_from_usable_clouds() -> None:
    catalog = Catalog([row("aws", "us-east-1a", 1.0, 0.5), row("gcp", "us-central1-a", 0.7, 0.3)])
    assert {o.location.cloud for o in catalog.candidates(gpus("L4:1"), clouds=["aws"])} == {"aws"}


def test_impossible_count_lists_the_sizes_each_cloud_sells() -> None:
    message = default_catalog().describe(gpus("A100:3"))
    assert message.startswith("A100:3 is not offered; A100 comes as A100:1, A100:2, A100:4, A100:8")
    assert "aws: A100:8" in message and "azure: A100:8" in message


def test_unknown_accelerator_suggests_the_nearest_name() -> None:
    message = default_catalog().describe(gpus("H200:8"))
    assert "No cloud offers accelerator 'H200'" in message
    assert "Did you mean 'H100'?" in message


def test_request_outside_allowed_places_says_where_it_is_offered() -> None:
    request = gpus("A100-80GB:8", places=(LocationFilter(cloud="aws", region="eu-west-1"),))
    message = default_catalog().describe(request)
    assert "not offered in aws/eu-west-1" in message
    assert "aws: us-east-1, us-west-2" in message


def test_too_small_instance_lists_the_shapes_on_offer() -> None:
    message = default_catalog().describe(gpus("A10G:1", cpus="16+"))
    assert "No instance with A10G:1 has cpus=16+" in message
    assert "g5.xlarge (4 vCPU, 16 GiB)" in message


def test_accelerator_only_on_clouds_without_credentials_points_to_serve_check() -> None:
    message = default_catalog().describe(gpus("A10G:4"), clouds=["gcp", "azure"])
    assert "offered only on aws" in message and "serve check" in message


def test_spot_request_where_no_spot_is_sold_suggests_on_demand() -> None:
    catalog = Catalog([row("aws", "us-east-1a", 1.0, None)])
    assert "use_spot: false" in catalog.describe(gpus("L4:1", use_spot=True))


def test_require_raises_an_operator_error_carrying_the_explanation() -> None:
    with pytest.raises(NotOffered) as err:
        default_catalog().require(gpus("A100:3"))
    assert isinstance(err.value, InvalidRequest) and not err.value.try_elsewhere
    assert "A100 comes as" in str(err.value)


def test_require_returns_candidates_when_satisfiable() -> None:
    offers = default_catalog().require(gpus("H100:8", use_spot=True))
    assert {o.location.cloud for o in offers} == {"aws", "gcp", "azure"}


def test_malformed_row_is_reported_with_its_file_line(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "# comment\n"
        "cloud,instance_type,accelerator,accelerator_count,vcpus,memory_gib,region,zone,"
        "on_demand_price,spot_price\n"
        "aws,g5.xlarge,A10G,1,4,16,us-east-1,us-east-1a,1.006,0.4\n"
        "aws,g5.xlarge,A10G,1,4,16,us-east-1,us-east-1b,cheap,0.4\n"
    )
    with pytest.raises(CatalogError, match=r"catalog\.csv:4: .*cheap"):
        load_catalog(path)


def test_missing_column_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("cloud,instance_type\naws,g5.xlarge\n")
    with pytest.raises(CatalogError, match="missing columns"):
        load_catalog(path)
