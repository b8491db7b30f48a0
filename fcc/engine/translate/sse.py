"""Incremental server-sent-events decoding: feed bytes, get whole events; no I/O."""

from __future__ import annotations

import codecs

import msgspec


class SSEMessage(msgspec.Struct, frozen=True):
    event: str | None
    data: str


class SSEDecoder:
    """Splits a byte stream into events per the SSE spec (CRLF/LF/CR, comments, multi-line data)."""

    __slots__ = ("_buffer", "_data", "_event", "_utf8")

    def __init__(self) -> None:
        self._buffer = ""
        self._event: str | None = None
        self._data: list[str] = []
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed_bytes(self, chunk: bytes) -> list[SSEMessage]:
        """feed() for the bytes of one read: UTF-8, a character cut across reads joined, a byte
        no UTF-8 has replaced (U+FFFD)."""
        utf8 = self._utf8
        if utf8.buffer:  # the rest of a character the last read cut
            return self.feed(utf8.decode(chunk))
        try:
            text = chunk.decode()  # a read that ends on a whole character: one C call
        except UnicodeDecodeError:
            text = utf8.decode(chunk)  # a cut character (kept for the next read) or a bad byte
        return self.feed(text)

    def feed(self, chunk: str) -> list[SSEMessage]:
        if (
            chunk.endswith("\n\n")
            and chunk.startswith("data: ")
            and chunk.count("\n") == 2
            and "\r" not in chunk
            and not self._buffer
            and not self._data
            and self._event is None
        ):
            # One whole data-only event in one read, nothing pending: how OpenAI-compatible
            # servers stream each chunk. Its one line needs no splitting.
            return [SSEMessage(None, chunk[6:-2])]
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
        out = self.feed(self._utf8.decode(b"", final=True))  # a character cut at the very end
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
