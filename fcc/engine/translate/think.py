"""Split inline <think>…</think> reasoning out of streamed content, tags cut anywhere."""

from __future__ import annotations

from typing import Literal

Part = tuple[Literal["text", "thinking"], str]
OPEN, CLOSE = "<think>", "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkSplitter:
    __slots__ = ("_held", "_inside", "_seen_text")

    def __init__(self) -> None:
        self._inside = False
        self._held = ""  # a possible tag prefix waiting for the next piece
        self._seen_text = False

    def feed(self, text: str) -> list[Part]:
        if not self._held and "<" not in text:
            # Fast path: no tag can start here.
            if text:
                self._seen_text = self._seen_text or not self._inside
                return [("thinking" if self._inside else "text", text)]
            return []
        text = self._held + text
        self._held = ""
        out: list[Part] = []
        while text:
            tag = CLOSE if self._inside else OPEN
            pos = text.find(tag)
            stray = -1 if self._inside else text.find(CLOSE)
            if stray != -1 and (pos == -1 or stray < pos):
                # A closing tag with no opening one (R1 distills omit it): drop the tag.
                self._emit(out, text[:stray])
                text = text[stray + len(CLOSE) :]
                continue
            if pos == -1:
                keep = max(_partial_suffix(text, tag), 0 if self._inside else _partial_suffix(text, CLOSE))
                self._emit(out, text[: len(text) - keep])
                self._held = text[len(text) - keep :]
                break
            self._emit(out, text[:pos])
            text = text[pos + len(tag) :]
            self._inside = not self._inside
            if not self._inside:
                text = text.lstrip("\n") if not self._seen_text else text
        return out

    def flush(self) -> list[Part]:
        out: list[Part] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[Part], text: str) -> None:
        if not text:
            return
        kind: Literal["text", "thinking"] = "thinking" if self._inside else "text"
        if kind == "text":
            self._seen_text = True
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
