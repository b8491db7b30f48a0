from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.amber import AmberSnapshotExtension
from syrupy.extensions.amber.serializer import AmberDataSerializer

from fcc.engine.catalog.config import Settings, load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from fcc.engine.translate import toollist, wire
from tests.support.servers import serve
from tests.support.upstream import Upstream

# Tests never read the developer's own ~/.config/free-claude-code or keys.
_HOME = tempfile.mkdtemp(prefix="fcc-test-home-")
os.environ["XDG_CONFIG_HOME"] = str(Path(_HOME) / "config")
# One document cache for the session (catalog/cache.py): it never writes to the real ~/.cache.
os.environ["XDG_CACHE_HOME"] = str(Path(_HOME) / "cache")
os.environ.pop("FCC_CONFIG", None)


@pytest.fixture(autouse=True)
def _fresh_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's fcc keeps its state (the default SQLite store) in a directory of its own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _shared_tool_lists_stay_as_parsed() -> Iterator[None]:
    """Every request with a tool list seen before gets the one parsed copy
    (translate/toollist.py): whatever a test ran, nothing may have changed one in place."""
    yield
    for known in toollist.known_lists():
        assert known.tools == wire.fast_loads(known.raw), "a shared tool list was changed in place"


SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures" / "claude-code"


@dataclass
class Live:
    upstream: Upstream
    upstream_url: str


@pytest.fixture(scope="session")
def live_upstream() -> Iterator[Live]:
    upstream = Upstream()
    with serve(upstream.app()) as url:
        yield Live(upstream, url)


def replay_config(tmp: Path, upstream_url: str, extra: str = "") -> Path:
    path = tmp / "config.yaml"
    path.write_text(
        f"""\
providers:
  replay:
    display_name: Replay upstream
    transport: openai_chat
    base_url: {upstream_url}/v1
    auth: none
    local: true
  replay_anthropic:
    display_name: Replay Anthropic upstream
    transport: anthropic_messages
    base_url: {upstream_url}
    auth: none
    local: true
tiers:
  opus: replay/agent:echo
  sonnet: replay/agent:echo
  haiku: replay/text:hi_there
  default: replay/text:hello_from_the_test_upstream
{extra}""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def replay_settings(tmp_path: Path, live_upstream: Live) -> Settings:
    return load_settings(replay_config(tmp_path, live_upstream.upstream_url))


@pytest.fixture
def fcc_url(replay_settings: Settings) -> Iterator[str]:
    with serve(create_app(replay_settings, KeyStore(environ={}))) as url:
        yield url


class _Serializer(AmberDataSerializer):
    """fcc's values are msgspec Structs: pinned as syrupy pins a dataclass (its fields by
    name), so a snapshot says what a value holds, not how its class is declared."""

    @classmethod
    def _assign_serialize_method(cls, data: Any) -> Callable[..., str]:
        if isinstance(data, msgspec.Struct):
            return cls.serialize_struct
        return super()._assign_serialize_method(data)

    @classmethod
    def serialize_struct(cls, data: msgspec.Struct, **kwargs: Any) -> str:
        keys = sorted(data.__struct_fields__)
        return cls.serialize_custom_iterable(
            data=data, resolve_entries=(keys, getattr, None), separator="=", **kwargs
        )


class _SnapshotsDir(AmberSnapshotExtension):
    # Pinned translations live in tests/snapshots/, as the layout says.
    snapshot_dirname = "snapshots"
    serializer_class = _Serializer


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(_SnapshotsDir)
