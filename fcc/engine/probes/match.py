"""Is this request a probe? A pure function of the request and the probe documents."""

from __future__ import annotations

from collections.abc import Sequence

from fcc.engine.probes.model import Probe
from fcc.engine.request.conditions import holds
from fcc.engine.request.features import Features
from fcc.engine.types import JSON


def find_probe(probes: Sequence[Probe], body: JSON, features: Features, tier: str | None) -> Probe | None:
    for probe in probes:
        if holds(probe.match, body, features, tier):
            return probe
    return None
