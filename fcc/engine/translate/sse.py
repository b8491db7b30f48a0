"""Incremental server-sent-events decoding: feed bytes, get whole events; no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEMessage:
    event: str | None
    data: str


class SSEDecoder:
    """Splits a byte stream into events per the SSE spec (CRLF/LF/CR, comments, multi-line data)."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = ""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: str) -> list[SSEMessage]:
        self._buffer += chunk
        out: list[SSEMessage] = []
        if "\r" in self._buffer:
            # Keep a trailing \r: it may be the first half of a \r\n cut across chunks.
            head, tail = (self._buffer[:-1], "\r") if self._buffer.endswith("\r") else (self._buffer, "")
            self._buffer = head.replace("\r\n", "\n").replace("\r", "\n") + tail
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line, out)
        return out

    def flush(self) -> list[SSEMessage]:
        out: list[SSEMessage] = []
        if self._buffer:
            self._line(self._buffer.rstrip("\r"), out)
            self._buffer = ""
        self._line("", out)
        return out

    def _line(self, line: str, out: list[SSEMessage]) -> None:
        if line.startswith("data: "):  # nearly every line of an OpenAI or Anthropic stream
            self._data.append(line[6:])
            return
        if not line:
            if self._data or self._event is not None:
                out.append(SSEMessage(self._event, "\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line[0] == ":":
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
