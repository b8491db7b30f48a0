"""Routing through fcc on loopback with the official SDK: the upstream that receives each
request is the one the rule names, a skipped candidate is never contacted, a model without
vision gets the image note, a prompt too long for every window is a 400 that compacts, and
strategies spread requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from fcc.engine.catalog.config import load_settings
from fcc.engine.catalog.secrets import KeyStore
from fcc.engine.server import create_app
from tests.conftest import Live
from tests.support.servers import serve

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def _config(upstream: str) -> str:
    def provider(pid: str, transport: str, models: str) -> str:
        base = f"{upstream}/v1" if transport == "openai_chat" else upstream
        head = f"  {pid}:\n    transport: {transport}\n    base_url: {base}\n"
        return head + f"    local: true\n    models: {models}\n"

    return (
        "providers:\n"
        + provider("eyes", "openai_chat", "[{id: 'text:seen_by_eyes', vision: true}]")
        + provider(
            "blind",
            "openai_chat",
            "[{id: 'text:never', vision: false}, {id: 'text:blind_note', vision: false}]",
        )
        + provider("blind_msgs", "anthropic_messages", "[{id: 'text:blind_note_msgs', vision: false}]")
        + provider(
            "small",
            "openai_chat",
            "[{id: 'text:small_window', context_window: 4096, max_output_tokens: 4095}]",
        )
        + provider("tiny", "openai_chat", "[{id: 'text:tiny_window', context_window: 1500}]")
        + provider("rr", "openai_chat", "[{id: 'text:rr_one'}, {id: 'text:rr_two'}]")
        + """tiers:
  opus: eyes/text:seen_by_eyes
  sonnet: eyes/text:seen_by_eyes
  haiku: small/text:small_window
  default: eyes/text:seen_by_eyes
routes:
  - name: screenshots
    when: {has_images: true, header: {x-test: chain}}
    use: [blind/text:never, eyes/text:seen_by_eyes]
  - name: blind-only
    when: {has_images: true, header: {x-test: blind}}
    use: blind/text:blind_note
  - name: blind-only-msgs
    when: {has_images: true, header: {x-test: blind-msgs}}
    use: blind_msgs/text:blind_note_msgs
  - name: tiny
    when: {header: {x-test: tiny}}
    use: tiny/text:tiny_window
  - name: spread
    when: {header: {x-test: spread}}
    use: [rr/text:rr_one, rr/text:rr_two]
    strategy: round_robin
  - name: spread-refused
    when: {header: {x-test: spread-refused}}
    use: [rr/status:400, rr/status:422]
    strategy: round_robin
"""
    )


@pytest.fixture
def fcc(tmp_path: Path, live_upstream: Live) -> Iterator[str]:
    config = tmp_path / "config.yaml"
    config.write_text(_config(live_upstream.upstream_url), encoding="utf-8")
    with serve(create_app(load_settings(config), KeyStore(environ={}))) as url:
        yield url


def _sdk(url: str, test: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, default_headers={"x-test": test})


def _models_seen(live: Live, since: int) -> list[str]:
    return [r.body["model"] for r in live.upstream.requests[since:]]


def _user(*blocks: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "what is in the picture?"}, *blocks]}]


def test_the_rule_names_the_upstream_and_skipped_candidates_are_never_contacted(
    fcc: str, live_upstream: Live
):
    since = len(live_upstream.upstream.requests)
    with _sdk(fcc, "chain") as sdk:
        raw = sdk.messages.with_raw_response.create(
            model="claude-sonnet-9", max_tokens=50, messages=_user(IMAGE)
        )
    message = raw.parse()
    assert message.content[0].text == "seen by eyes"
    assert raw.headers["x-fcc-rule"] == "screenshots"
    assert raw.headers["x-fcc-route"] == "eyes/text:seen_by_eyes"
    assert _models_seen(live_upstream, since) == ["text:seen_by_eyes"]  # text:never was skipped
    # Without the rule's conditions, the family tier decides.
    with _sdk(fcc, "none") as sdk:
        raw = sdk.messages.with_raw_response.create(model="claude-haiku-9", max_tokens=50, messages=_user())
    assert raw.headers["x-fcc-rule"] == "tier:haiku"


@pytest.mark.parametrize(
    ("test", "model"), [("blind", "text:blind_note"), ("blind-msgs", "text:blind_note_msgs")]
)
def test_a_model_that_cannot_see_gets_the_image_as_a_note(
    test: str, model: str, fcc: str, live_upstream: Live
):
    since = len(live_upstream.upstream.requests)
    with _sdk(fcc, test) as sdk:
        sdk.messages.create(model="claude-sonnet-9", max_tokens=50, messages=_user(IMAGE))
    (sent,) = [r.body for r in live_upstream.upstream.requests[since:]]
    assert sent["model"] == model
    text = str(sent["messages"])
    assert "this model cannot see images" in text
    assert PNG not in text and "image_url" not in text and "'type': 'image'" not in text


def test_a_prompt_too_long_for_every_window_is_a_400_that_compacts(fcc: str, live_upstream: Live):
    since = len(live_upstream.upstream.requests)
    with _sdk(fcc, "tiny") as sdk, pytest.raises(anthropic.BadRequestError) as err:
        sdk.messages.create(
            model="claude-sonnet-9", max_tokens=100, messages=[{"role": "user", "content": "word " * 2000}]
        )
    message = err.value.body["error"]["message"]
    assert message.startswith("prompt is too long: ") and "> 476 maximum" in message, message
    assert _models_seen(live_upstream, since) == []  # nothing was sent


def test_a_window_that_fits_the_prompt_gets_max_tokens_lowered(fcc: str, live_upstream: Live):
    since = len(live_upstream.upstream.requests)
    with _sdk(fcc, "none") as sdk:
        count = sdk.messages.count_tokens(model="claude-haiku-9", messages=_user()).input_tokens
        sdk.messages.create(model="claude-haiku-9", max_tokens=8000, messages=_user())
    (sent,) = [r.body for r in live_upstream.upstream.requests[since:]]
    assert sent["model"] == "text:small_window"
    assert sent["max_tokens"] == 4096 - count  # what is left of the window, not the cap of 4095


def test_round_robin_spreads_consecutive_requests(fcc: str, live_upstream: Live):
    since = len(live_upstream.upstream.requests)
    with _sdk(fcc, "spread") as sdk:
        for _ in range(4):
            sdk.messages.create(model="claude-sonnet-9", max_tokens=20, messages=_user())
    assert _models_seen(live_upstream, since) == ["text:rr_one", "text:rr_two", "text:rr_one", "text:rr_two"]


def test_an_error_names_the_backend_that_refused_whatever_the_strategy_tried_first(
    fcc: str, live_upstream: Live
):
    since = len(live_upstream.upstream.requests)
    named = []
    for _ in range(2):
        body = {"model": "claude-sonnet-9", "max_tokens": 20, "messages": _user()}
        refused = httpx.post(f"{fcc}/v1/messages", json=body, headers={"x-test": "spread-refused"})
        assert refused.status_code in (400, 422)
        named.append(refused.headers["x-fcc-route"].split("/", 1)[1])
    assert named == _models_seen(live_upstream, since) == ["status:400", "status:422"]


def test_rule_hits_and_skips_reach_the_record_and_metrics(fcc: str, live_upstream: Live):
    with _sdk(fcc, "chain") as sdk:
        sdk.messages.create(model="claude-sonnet-9", max_tokens=50, messages=_user(IMAGE))
    data = httpx.get(f"{fcc}/dashboard/data").json()
    record = data["recent"][0]
    assert record["rule"] == "screenshots"
    assert record["skipped"] == ["blind/text:never: vision: the model cannot see images"]
    assert data["rules"]["screenshots"] >= 1
    assert data["skipped"]["blind/text:never"] >= 1
    metrics = httpx.get(f"{fcc}/metrics").text
    assert 'fcc_rule_decisions_total{rule="screenshots"} 1' in metrics
    assert 'fcc_candidates_skipped_total{candidate="blind/text:never",reason="vision"} 1' in metrics
