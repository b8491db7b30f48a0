"""GET /v1/models: the tiers, every routed model, the catalog models of providers with a key
or local, each id one Claude Code's discovery keeps and the router reads back; paging."""

from __future__ import annotations

import httpx
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.routing.router import direct
from fcc.engine.server import create_app
from fcc.engine.server.catalog_models import build
from tests.support.servers import serve

SETTINGS = load_settings(user_config=False)
EVERY_KEY = KeyStore(environ={p.api_key_env: "k" for p in SETTINGS.providers.values() if p.api_key_env})


def test_every_id_survives_discovery_and_routes_back_to_its_model():
    listed = build(SETTINGS, EVERY_KEY).entries
    ids = [e["id"] for e in listed]
    assert len(ids) == len(set(ids)) and all("claude" in i.lower() for i in ids)
    assert ids[:4] == ["claude-opus-fcc", "claude-sonnet-fcc", "claude-haiku-fcc", "claude-default-fcc"]
    catalog = {f"{p.id}/{m.id}" for p in SETTINGS.providers.values() for m in p.models}
    advertised = {e["id"].split("/", 1)[1] for e in listed if e["id"].startswith("claude-fcc/")}
    assert advertised == catalog  # with every key set, every catalog model is reachable
    for entry in listed[4:]:
        route = direct(entry["id"], SETTINGS)
        assert route is not None and route.primary.label == entry["id"].split("/", 1)[1]
        off = entry["id"].startswith("claude-fcc-nothink/")
        assert route.thinking is (False if off else None)
        assert entry["display_name"].endswith("(no thinking)") == off
        assert entry["description"].startswith(route.primary.label)


def test_without_keys_only_local_providers_and_routes_are_listed():
    ids = [e["id"] for e in build(SETTINGS, KeyStore(environ={})).entries]
    providers = {i.split("/")[1] for i in ids if "/" in i}
    assert providers == {"ollama", "lmstudio", "llamacpp", "vllm"}


@pytest.mark.parametrize("limit", [1, 7, 20, 1000])
def test_paging_walks_the_whole_list_both_ways(limit: int):
    app = create_app(SETTINGS, EVERY_KEY)
    everything = [e["id"] for e in build(SETTINGS, EVERY_KEY).entries]
    with serve(app) as url:
        seen: list[str] = []
        after = None
        while True:
            params = {"limit": limit, **({"after_id": after} if after else {})}
            page = httpx.get(f"{url}/v1/models", params=params).json()
            seen += [e["id"] for e in page["data"]]
            assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert seen == everything
        back = httpx.get(f"{url}/v1/models", params={"limit": limit, "before_id": everything[-1]}).json()
        assert [e["id"] for e in back["data"]] == everything[-1 - limit : -1][-limit:]
        bad = httpx.get(f"{url}/v1/models", params={"limit": 0})
        assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]
