import json

import pytest

from policies.simulation.traces import UNLIMITED, TraceError, load_trace
from policies.types import Location
from tests.policies.trace_files import write_trace


def test_locations_come_from_the_file_names(tmp_path):
    (tmp_path / "us-east-1f_v100_1.json").write_text(
        '{"metadata": {"gap_seconds": 300}, "data": [1]}'
    )
    (tmp_path / "us-central1-a_a100_40gb_8.json").write_text(
        '{"metadata": {"gap_seconds": 150}, "data": [2]}'
    )
    trace = load_trace(tmp_path)
    assert [z.location for z in trace.zones] == [
        Location("gcp", "us-central1", "us-central1-a"),
        Location("aws", "us-east-1", "us-east-1f"),
    ]


def test_samples_are_held_for_their_whole_interval(tmp_path):
    write_trace(tmp_path, {"us-east-1a": [1, 2]}, gap=90)
    assert load_trace(tmp_path).capacity_at_ticks(30).tolist() == [[1, 1, 1, 2, 2, 2]]


def test_zones_are_cut_to_the_shortest_one(tmp_path):
    write_trace(tmp_path, {"us-east-1a": [1, 2, 3], "us-east-1b": [4, 5]})
    assert load_trace(tmp_path).capacity_at_ticks(30).shape == (2, 2)


def test_trace_of_only_zeros_and_ones_reads_one_as_unlimited(tmp_path):
    write_trace(tmp_path, {"us-east-1a": [0, 1]})
    assert load_trace(tmp_path).capacity_at_ticks(30).tolist() == [[0, UNLIMITED]]


def test_count_mode_reads_one_as_one_instance(tmp_path):
    write_trace(tmp_path, {"us-east-1a": [0, 1]})
    assert load_trace(tmp_path, "count").capacity_at_ticks(30).tolist() == [[0, 1]]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"data": [1]}), "gap_seconds"),
        (json.dumps({"metadata": {"gap_seconds": -5}, "data": [1]}), "gap_seconds"),
        (json.dumps({"metadata": {"gap_seconds": 300}, "data": []}), "non-empty list"),
        (json.dumps({"metadata": {"gap_seconds": 300}, "data": [1, -2]}), "data[1]"),
        (json.dumps({"metadata": {"gap_seconds": 300}, "data": [1, "x"]}), "data[1]"),
    ],
)
def test_malformed_file_is_refused_naming_the_file_and_the_problem(tmp_path, body, problem):
    bad = tmp_path / "us-east-1a_v100_1.json"
    bad.write_text(body)
    with pytest.raises(TraceError) as caught:
        load_trace(tmp_path)
    assert str(bad) in str(caught.value)
    assert problem in str(caught.value)


def test_file_name_without_a_zone_is_refused(tmp_path):
    (tmp_path / "zone1.json").write_text('{"metadata": {"gap_seconds": 300}, "data": [1]}')
    with pytest.raises(TraceError, match=r"zone1\.json"):
        load_trace(tmp_path)


def test_directory_without_trace_files_is_refused(tmp_path):
    with pytest.raises(TraceError, match="no zone trace files"):
        load_trace(tmp_path)
