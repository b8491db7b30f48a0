"""Local answers to Claude Code's busywork requests, driven by probe documents."""

from fcc.engine.catalog.registry import check_registry, schema_enum
from fcc.engine.probes.answers import ANSWERS
from fcc.engine.probes.match import find_probe
from fcc.engine.probes.model import Probe, probe_from_data
from fcc.engine.probes.respond import answer_events

__all__ = ["Probe", "answer_events", "find_probe", "probe_from_data"]

check_registry(ANSWERS, schema_enum("probe", "properties", "answer", "oneOf", "1", "properties", "function"))
