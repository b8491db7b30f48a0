"""Claude Code's tool list, parsed, checked, measured, translated and encoded once.

Every main turn carries the same 12-25 tool definitions: 30-75 KB of a 50-90 KB request,
65-85% of its bytes, identical from turn to turn. `parse_body` splits the request into its
top-level members (msgspec scans them without building objects) and, when the `tools`
member's bytes equal a list seen before, hands out that list's one parsed copy instead of
parsing it again. Everything fcc works out from the tools alone (their validity, the token
estimate's share, the names routing reads, each upstream format's translation and its JSON)
is kept on that one `ToolList` and computed the first time it is asked for.

The shared list and everything derived from it must never be changed in place: translations
build new objects (translate/openai_request.py, anthropic_request.py), and the suites check
that every cached list still equals a fresh parse of its bytes after they ran.

A request whose tools were never seen, or that is not split (no `tools` member, or JSON the
split refuses), is parsed whole, as before, and takes the ordinary paths: the values are the
same either way, and so are the bytes sent upstream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import msgspec

from fcc.engine.translate import wire

T = TypeVar("T")

# Distinct tool lists kept: one per Claude Code version and agent kind in use (the main
# loop's, a subagent's, a plan mode's), with room to spare. Each is ~75 KB of JSON at most,
# kept as bytes and parsed.
MAX_LISTS = 8
_TOOLS_KEY = b'"tools"'
_split = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode = msgspec.json.Decoder().decode


class ToolList:
    """One distinct tools array: its bytes, its one parsed copy, and what was derived from it."""

    __slots__ = ("_derived", "_wired", "checked", "raw", "tools")

    def __init__(self, raw: bytes, tools: list[Any]) -> None:
        self.raw = raw
        self.tools = tools
        self.checked = False  # translate/validate.py found nothing wrong with it
        self._derived: dict[Hashable, Any] = {}
        self._wired: list[int] = []  # its lists in _wire, to forget with it
        self._register(tools)  # passed through as it is (anthropic_messages)

    def derived(self, key: Hashable, make: Callable[[list[Any]], T]) -> T:
        """`make(tools)`, computed once per key: `make` must depend on nothing but the tools
        and what the key names."""
        try:
            return self._derived[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._derived[key] = make(self.tools)
            return value

    def on_wire(self, key: Hashable, make: Callable[[list[Any]], list[Any]]) -> list[Any]:
        """A derived list that goes into an upstream body as it is: `encode_body` writes its
        JSON, encoded the first time, instead of encoding it again."""

        return self.derived(key, lambda tools: self._register(make(tools)))

    def _register(self, value: list[Any]) -> list[Any]:
        _wire[id(value)] = [value, None]
        self._wired.append(id(value))
        return value


# The lists kept, least recently used first; by their JSON's length, then compared byte for
# byte (hashing 75 KB at every request would cost more than the compare); by the parsed
# list's identity, for the code that is handed it.
_lists: OrderedDict[int, ToolList] = OrderedDict()
_by_length: dict[int, list[ToolList]] = {}
_by_identity: dict[int, ToolList] = {}
# id(list) → [the list, its JSON once encoded]: the lists on_wire made, and each parsed list.
_wire: dict[int, list[Any]] = {}


def parse_body(raw: bytes | bytearray) -> Any:
    """The client's JSON, as wire.fast_loads parses it (DecodeError for what msgspec refuses),
    with a tools list seen before shared rather than parsed again."""
    if _TOOLS_KEY not in raw:
        return wire.fast_loads(raw)
    try:
        parts = _split(raw)
        return {key: _tools(value) if key == "tools" else _decode(value) for key, value in parts.items()}
    except msgspec.DecodeError:  # not an object (ValidationError), or not JSON: the whole parse decides
        return wire.fast_loads(raw)
    except RecursionError:
        raise msgspec.DecodeError("nested too deeply") from None


def loads(raw: bytes | bytearray) -> Any:
    """Like wire.loads (ValueError for what is not JSON), with the tools shared as parse_body does."""
    try:
        return parse_body(raw)
    except msgspec.DecodeError:
        return wire.loads(raw)


def shared(tools: object) -> ToolList | None:
    """The ToolList whose parsed copy `tools` is, if it is one."""
    found = _by_identity.get(id(tools))
    return found if found is not None and found.tools is tools else None


def encode_body(body: dict[str, Any]) -> bytes:
    """wire.dumps(body), byte for byte, with the JSON of a known `tools` list written as it was
    encoded the first time."""
    tools = body.get("tools")
    slot = _wire.get(id(tools)) if tools is not None else None
    if slot is None or slot[0] is not tools:
        return wire.dumps(body)
    if slot[1] is None:
        slot[1] = msgspec.Raw(wire.dumps(tools))
    return wire.dumps({**body, "tools": slot[1]})


def _tools(value: msgspec.Raw) -> Any:
    data = bytes(value)
    for known in _by_length.get(len(data), ()):
        if known.raw == data:
            _lists.move_to_end(id(known))
            return known.tools
    tools = _decode(data)
    if isinstance(tools, list):
        _remember(ToolList(data, tools))
    return tools


def _remember(known: ToolList) -> None:
    _lists[id(known)] = known
    _by_length.setdefault(len(known.raw), []).append(known)
    _by_identity[id(known.tools)] = known
    while len(_lists) > MAX_LISTS:
        _forget(_lists.popitem(last=False)[1])


def _forget(known: ToolList) -> None:
    same = _by_length[len(known.raw)]
    same.remove(known)
    if not same:
        del _by_length[len(known.raw)]
    del _by_identity[id(known.tools)]
    for key in known._wired:
        del _wire[key]


def known_lists() -> list[ToolList]:
    """The lists kept, for the suites' check that none was changed in place."""
    return list(_lists.values())


def clear() -> None:
    while _lists:
        _forget(_lists.popitem()[1])
