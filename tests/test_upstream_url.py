"""Where a provider document sends a request, and how it presents the key: URL templates,
the model in the path, query parameters, header-style auth and the auth default."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcc.engine.catalog.documents import parse
from fcc.engine.catalog.providers import provider_from_data
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.errors import UpstreamError
from fcc.engine.transports.base import auth_headers, upstream_url

VALID = Path(__file__).parent / "catalogs" / "valid"


def _provider(name: str):
    doc, problems = parse(VALID / f"{name}.yaml")
    assert doc is not None and not problems
    return provider_from_data(doc.data, str(VALID / name))


def test_templated_provider_fills_url_path_query_and_headers():
    p = _provider("provider_templated")
    keys = KeyStore(environ={"EXAMPLE_RESOURCE": "myres", "EXAMPLE_API_KEY": "k-123", "EXAMPLE_TENANT": "t1"})
    url = upstream_url(p, "my gpt/../deploy", keys, "/chat/completions")
    # The model id is quoted whole: it cannot add path segments or a query of its own.
    assert url == (
        "https://myres.example.com/openai/deployments/my%20gpt%2F..%2Fdeploy/chat/completions"
        "?api-version=2024-10-21"
    )
    headers = auth_headers(p, keys)
    assert headers == {"X-Tenant": "t1", "api-key": "k-123"}


def test_missing_placeholder_names_the_variable():
    p = _provider("provider_templated")
    with pytest.raises(UpstreamError) as err:
        upstream_url(p, "m", KeyStore(environ={}), "/chat/completions")
    assert "EXAMPLE_RESOURCE" in str(err.value) and err.value.should_retry is False


def test_minimal_provider_defaults():
    p = _provider("provider_minimal")
    assert p.auth == "none" and p.display_name == "minimal"
    assert upstream_url(p, "m", KeyStore(environ={}), "/chat/completions") == (
        "http://127.0.0.1:9000/v1/chat/completions"
    )
    keyed = provider_from_data(
        {"id": "keyed", "transport": "openai_chat", "base_url": "https://x.test/v1", "api_key_env": "K"},
        "<test>",
    )
    assert keyed.auth == "bearer"
    assert auth_headers(keyed, KeyStore(environ={"K": "secret"})) == {"authorization": "Bearer secret"}


def test_model_limits_and_tools_are_kept():
    p = _provider("provider_templated")
    info = p.model("my-gpt-deployment")
    assert info is not None and info.tools is True
    assert info.limits is not None and info.limits.requests_per_day == 50
    assert p.limits.day_reset == "rolling_24h" and p.limits.tokens_per_day == 1_000_000
