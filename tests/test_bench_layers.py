"""bench/layers.py: the layer-by-layer CPU per streamed token (what bench/MISSED.md's CPU row is
made of) runs against the real bench upstream, every layer streams every token of every answer,
and the report's steps are the differences of the layers' medians."""

from __future__ import annotations

import pytest

from bench.layers import LAYERS, layers, report
from tests.support.tools import run_json

QUICK = ["--rounds", "1", "--requests", "8", "--long-requests", "8", "--ttft-requests", "4"]


@pytest.mark.slow
def test_every_layer_streams_every_token_and_costs_cpu_per_token():
    # A layer whose answers failed or lost a token makes the run fail (bench/layers.py).
    data = run_json("bench.layers", *QUICK, timeout=300)
    assert list(data["cpu"]) == list(data["ttft"]) == layers()
    assert set(layers()) >= set(LAYERS) - {"aiohttp"}
    for layer, values in data["cpu"].items():
        assert len(values) == 1
        # 1,000-token answers cost more than 100-token ones; no layer is free of CPU per token.
        assert 0 < values[0] < 10_000, (layer, values)
    for layer, values in data["ttft"].items():
        # A layer is one more hop than the upstream asked directly, 50 ms to its first token.
        assert len(values) == 1 and -5 < values[0] < 50, (layer, values)


def test_the_report_gives_each_layers_median_and_its_step_from_the_one_before():
    cpu = {
        "aiohttp": [40.0],
        "stack": [30.0, 32.0, 31.0],
        "+ httpx": [33.0],
        "+ translation": [50.0, 52.0],
        "fcc": [60.0],
    }
    ttft = {
        "aiohttp": [1.0],
        "stack": [0.5, 0.7, 0.6],
        "+ httpx": [0.8],
        "+ translation": [0.9],
        "fcc": [2.0],
    }
    lines: list[str] = []
    report({"cpu": cpu, "ttft": ttft}, lines.append)
    rows = [line.split(" | ") for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert [r[0].lstrip("| ") for r in rows] == list(LAYERS)
    assert [r[1] for r in rows] == ["40.0", "31.0", "33.0", "51.0", "60.0"]
    assert [r[2] for r in rows][1:] == ["30.0 to 32.0", "33.0 to 33.0", "50.0 to 52.0", "60.0 to 60.0"]
    assert [r[3] for r in rows] == ["", "-9.0", "+2.0", "+18.0", "+9.0"]
    assert [r[4] for r in rows] == ["1.00", "0.60", "0.80", "0.90", "2.00"]
    assert [r[5] for r in rows][1] == "0.50 to 0.70"
    assert [r[6] for r in rows] == ["", "-0.40", "+0.20", "+0.10", "+1.10"]
