"""bench/profile.py on made-up py-spy stacks: each sample is charged to the part of fcc's code it
is in today (uvloop's C loop, aiohttp, msgspec through wire.py wherever it sits, uvicorn on
httptools, EventStream, the Silence watchdog), and fcc's steps are found on either event loop."""

from __future__ import annotations

from pathlib import Path

from bench import profile

TOP = "<module> (fcc:6);main (fcc/cli.py:625);serve (fcc/cli.py:384);run (uvicorn/main.py:632)"
UVLOOP = f"{TOP};asyncio_run (uvicorn/_compat.py:30);Runner.run (asyncio/runners.py:118)"
STDLIB = (
    f"{UVLOOP};BaseEventLoop.run_until_complete (asyncio/base_events.py:640);"
    "BaseEventLoop.run_forever (asyncio/base_events.py:607);"
    "BaseEventLoop._run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:84)"
)
ASGI = (
    "RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:422);"
    "Route.handle (starlette/routing.py:289)"
)
STREAM = (
    f"{ASGI};EventStream.__call__ (fcc/engine/server/edge.py:132);"
    "EventStream._stream (fcc/engine/server/edge.py:163)"
)
READ = (
    f"{STREAM};Pump.pull (fcc/engine/server/edge.py:80);stream_turn (fcc/engine/transports/http.py:140);"
    "Silence.wait (fcc/engine/transports/http.py:85)"
)
SAMPLES = {
    UVLOOP: 10,  # inside uvloop's C loop: nothing below Runner.run
    f"{UVLOOP};ResponseHandler.data_received (aiohttp/client_proto.py:300)": 7,
    f"{UVLOOP};{READ};_Body.__aiter__ (fcc/engine/transports/aio.py:63)": 6,
    f"{UVLOOP};{READ};_Lines.feed (fcc/engine/transports/openai_chat.py:85);"
    "loads (fcc/engine/translate/wire.py:37)": 5,
    f"{UVLOOP};{STREAM};EventStream._write (fcc/engine/server/edge.py:205);"
    "RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:500)": 4,
    f"{UVLOOP};{ASGI};messages (fcc/engine/server/messages.py:33);read_json (fcc/engine/server/state.py:165);"
    "fast_loads (fcc/engine/wire.py:28)": 3,  # wire.py before it moved to translate/
    f"{UVLOOP};{READ};OpenAIStreamTranslator._text (fcc/engine/translate/openai_stream.py:90);"
    "__create_fn__.<locals>.__init__ (<string>:3)": 2,  # a dataclass's __init__: charged to its caller
    f"{STDLIB};{READ}": 8,  # the same stream on the stdlib loop
    f"{STDLIB[: STDLIB.rindex(';')]};EpollSelector.select (selectors.py:468)": 1,
    f"{UVLOOP};messages (somewhere/else.py:1)": 1,  # not the route handler: its file does not match
}


def _profile(tmp_path: Path) -> profile.Profile:
    raw = tmp_path / "fcc-profile.txt"
    raw.write_text("".join(f"{stack} {n}\n" for stack, n in SAMPLES.items()), encoding="utf-8")
    found = profile.summarize(raw)
    assert found is not None
    return found


def test_samples_are_charged_to_the_code_they_are_in(tmp_path: Path) -> None:
    prof = _profile(tmp_path)
    assert prof.samples == 47
    buckets = {label.split(" (")[0]: round(share * prof.samples) for label, share in prof.buckets}
    assert buckets == {
        "uvloop": 10,
        "aiohttp": 7,
        "fcc aiohttp transport": 6,
        "msgspec via fcc's wire.py": 8,  # translate/wire.py and engine/wire.py alike
        "uvicorn on httptools": 4,
        "fcc translate": 2,
        "fcc transport loop": 8,
        "asyncio": 1,
        "other": 1,
    }


def test_fccs_steps_are_found_on_either_loop(tmp_path: Path) -> None:
    prof = _profile(tmp_path)
    key = {frame.split(" (")[0]: round(share * prof.samples) for _, frame, share in prof.key}
    assert key["Silence.wait"] == 6 + 5 + 2 + 8  # uvloop and stdlib samples alike
    assert key["EventStream._stream"] == 6 + 5 + 4 + 2 + 8
    assert key["Pump.pull"] == 6 + 5 + 2 + 8
    assert key["loads"] == 5 and key["fast_loads"] == 3
    assert key["messages"] == 3, "only the route handler in server/messages.py"
    assert key["_Body.__aiter__"] == 6 and key["RequestResponseCycle.send"] == 4
    inclusive = dict(prof.inclusive_top)
    # Frames down to the loop's callback runner are in every sample: left out.
    assert not any(label.startswith(("Runner.run", "Handle._run", "serve ")) for label in inclusive)
