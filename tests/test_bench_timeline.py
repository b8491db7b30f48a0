"""bench/timeline.py: the per-step timeline of one request inside fcc (what bench/MISSED.md's
first row is made of) comes out whole and in order, against the real bench upstream."""

from __future__ import annotations

import pytest

from bench.timeline import STEPS, WARM_UP, medians
from tests.support.tools import run_json


@pytest.mark.slow
def test_every_step_of_every_request_is_timed_in_order():
    data = run_json("bench.timeline", "--requests", str(WARM_UP + 4), timeout=180)
    assert len(data["requests"]) == WARM_UP + 4
    # In the order they happen; the handler may start before the last of the body is in, and
    # the upstream's head may come before the response is set up.
    ordered = [s for s in STEPS if s not in ("body in", "upstream headers")]
    for request in data["requests"]:
        assert set(request) == set(STEPS), f"steps not seen: {set(STEPS) - set(request)}"
        times = [request[s] for s in ordered]
        assert times == sorted(times)
        assert request["headers"] <= request["body in"] <= request["parsed"]
        assert request["sent"] <= request["upstream headers"] <= request["first chunk"]
        assert request["first chunk"] - request["upstream headers"] > 40_000  # the upstream's 50 ms
    assert {"messages.features_of", "toollist.encode_body", "Sender.request"} <= set(data["calls"])
    rows, n = medians(data)
    assert n == 4 and [r[0] for r in rows] == list(STEPS)


def test_medians_are_over_the_requests_after_the_warm_up():
    steps = list(STEPS)
    slow = {s: 1000.0 * (i + 1) for i, s in enumerate(steps)}
    fast = {s: 10.0 * (i + 1) for i, s in enumerate(steps)}
    rows, n = medians({"requests": [slow] * WARM_UP + [fast] * 3, "calls": {}})
    assert n == 3
    assert rows[0] == (steps[0], 10.0, 10.0) and rows[-1] == (steps[-1], 10.0 * len(steps), 10.0)
