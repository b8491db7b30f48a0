"""POST /v1/messages and /v1/messages/count_tokens, GET /v1/models."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fcc.engine.errors import UpstreamError
from fcc.engine.probes import Probe, answer_events, find_probe
from fcc.engine.request.features import features_of
from fcc.engine.routing.candidates import plan as plan_for
from fcc.engine.routing.dispatch import Request as TurnRequest
from fcc.engine.routing.dispatch import TurnRecord, new_message_id
from fcc.engine.routing.router import decide, probe_tier
from fcc.engine.server.edge import (
    EventStream,
    Pump,
    error_response,
    request_id,
    upstream_error_response,
)
from fcc.engine.server.state import AppState, deny, read_body, read_json, state_of, token_ok
from fcc.engine.translate.events import MessageAccumulator, MessageStart, Usage, encode
from fcc.engine.translate.tokens import count_tokens
from fcc.engine.translate.validate import check_request
from fcc.engine.types import JSON


async def messages(request: Request) -> Response:
    if not token_ok(request):
        return deny()
    state = state_of(request)
    body, raw = await read_body(request)
    check_request(body, need_max_tokens=True)
    settings = state.settings
    features = features_of(
        body, request.headers, wanted_headers=settings.header_names, sizes=state.tool_sizes
    )
    tier = probe_tier(features.model, settings)
    record = TurnRecord(requested=features.model, tier=tier, session=features.session, stream=features.stream)
    estimate = features.input_tokens
    probe = find_probe(state.probes, body, features, tier)
    if probe is not None:
        return _probe_answer(state, probe, body, estimate, record)
    route = decide(features, body, settings)
    record.tier, record.rule = route.tier, route.decided_by
    headers = {"request-id": request_id(), "x-fcc-rule": route.decided_by}
    plan = plan_for(route, features, state.evidence)
    record.skipped = tuple(f"{v.model}: {v.reason}" for v in plan.skipped)
    if plan.error is not None:
        exc = plan.error
        record.error_type = exc.error_type
        state.finish(record, exc.status)
        return error_response(exc.status, exc.error_type, str(exc), headers=headers)
    turn = TurnRequest(
        body,
        features,
        route,
        plan,
        request.headers.get("anthropic-beta"),
        request.headers.get("anthropic-version"),
        # Another candidate may need the request built again: from these bytes, once the
        # first attempt has dropped the parsed body.
        raw if len(plan.attempts) > 1 else None,
    )
    del body, raw
    assert state.dispatcher is not None
    pump = Pump(state.dispatcher.events(turn, record))
    headers["x-fcc-route"] = plan.attempts[0].candidate.label
    if not record.stream:
        return await _whole(state, pump, record, headers)
    answer = _Streamed(state, record, headers)
    try:
        first = await pump.begin()
    except StopAsyncIteration:
        await pump.aclose()
        return answer.refused(None)
    except UpstreamError as exc:
        await pump.aclose()
        return answer.refused(exc)
    # The upstream is thinking: the response is set up now, and the first content wakes the
    # task that writes it (server/edge.py).
    start = MessageStart(new_message_id(), features.model, Usage(estimate, 1))
    return EventStream(first, pump, settings.server.ping_interval, start, answer, state.loop)


class _Streamed:
    """A streamed request's side of its answer (edge.Answer)."""

    def __init__(self, state: AppState, record: TurnRecord, headers: dict[str, str]) -> None:
        self._state = state
        self._record = record
        self._headers = headers

    def headers(self) -> dict[str, str]:
        headers = _tried(self._record, self._headers)
        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return headers

    def refused(self, exc: UpstreamError | None) -> Response:
        if exc is None:
            self._state.finish(self._record, 502)
            return error_response(502, "api_error", "the upstream ended without answering")
        self._state.finish(self._record, exc.status)
        return upstream_error_response(exc, _tried(self._record, self._headers))

    def done(self, status: int | None) -> None:
        self._state.finish(self._record, status or self._record.status)


def _probe_answer(state: AppState, probe: Probe, body: JSON, estimate: int, record: TurnRecord) -> Response:
    # Busywork answered here: no upstream call, no rate-limited request spent.
    events = answer_events(probe, body, new_message_id(), estimate)
    record.probe = probe.name
    record.served_by = f"probe:{probe.name}"
    for event in events:
        record.note(event)
    headers = {"request-id": request_id(), "x-fcc-probe": probe.name, "x-fcc-route": record.served_by}
    if record.stream:
        state.finish(record, 200)
        payload = b"".join(encode(e) for e in events)
        return Response(
            payload, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
        )
    acc = MessageAccumulator()
    for event in events:
        acc.feed(event)
    headers["x-fcc-overhead-ms"] = f"{state.finish(record, 200):.2f}"
    return JSONResponse(acc.result(), headers=headers)


def _tried(record: TurnRecord, headers: dict[str, str]) -> dict[str, str]:
    """x-fcc-route: the backend that answered, else the last one tried (a strategy may have
    tried another than the plan's first), else the plan's first."""
    label = record.served_by or (record.attempts[-1] if record.attempts else None)
    if label:
        headers["x-fcc-route"] = label
    return headers


async def _whole(state: AppState, pump: Pump, record: TurnRecord, headers: dict[str, str]) -> Response:
    acc = MessageAccumulator()
    try:
        while True:
            for event in await pump.pull():
                acc.feed(event)
    except StopAsyncIteration:
        pass
    except UpstreamError as exc:
        state.finish(record, exc.status)
        return upstream_error_response(exc, _tried(record, headers))
    finally:
        await pump.aclose()
    if acc.error is not None:
        status = 529 if acc.error.error_type == "overloaded_error" else 500
        state.finish(record, status)
        return error_response(status, acc.error.error_type, acc.error.message, headers=headers)
    _tried(record, headers)
    headers["x-fcc-overhead-ms"] = f"{state.finish(record, 200):.2f}"
    return JSONResponse(acc.result(), headers=headers)


async def count(request: Request) -> Response:
    if not token_ok(request):
        return deny()
    body = await read_json(request)
    check_request(body, need_max_tokens=False)
    # The same estimate routing rules and context checks use (request/features.py).
    return JSONResponse({"input_tokens": count_tokens(body, state_of(request).tool_sizes)})


async def models(request: Request) -> Response:
    if not token_ok(request):
        return deny()
    state = state_of(request)
    params = request.query_params
    raw = params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        return error_response(
            400, "invalid_request_error", f"limit: a whole number from 1 to 1000, not {raw!r}"
        )
    page = state.models.page(int(raw), params.get("after_id"), params.get("before_id"))
    return JSONResponse(page)
