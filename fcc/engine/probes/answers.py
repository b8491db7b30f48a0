"""The few probe answers that must be computed from the request. Registered by name; the
probe schema's `function` enum lists the same names (checked at import)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping

from fcc.engine.translate.openai_request import text_of
from fcc.engine.types import JSON

# Words that say what the user wants done, not what the session is about (the client's own
# title instructions ask to leave them out), and politeness around them.
_LEAD_WORDS = frozenset(
    (
        "please can could would you help me with i want to we need lets let's us fix add check "
        "investigate implement evaluate debug refactor update look into make create write show tell "
        "explain run"
    ).split()
)
_POLITE = frozenset("please pls thanks thank you".split())
# Words that only lead into what follows: a cut title never ends on one.
_DANGLING = frozenset("to the a an of for and with in on at by my your".split())
_MAX_TITLE_WORDS = 6


def _first_user_text(body: JSON) -> str:
    for message in body.get("messages", []):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _words(text: str) -> list[str]:
    return re.findall(r"[\w][\w./#:+-]*", text, re.UNICODE)


def short_title(text: str, max_words: int = _MAX_TITLE_WORDS) -> str:
    """A noun-phrase-ish title from the first words of a request, in the user's language."""
    session = re.search(r"<session>\s*(.*?)\s*</session>", text, re.S)
    line = next((ln for ln in (session.group(1) if session else text).splitlines() if ln.strip()), "")
    words = _words(line)
    while len(words) > 2 and words[0].lower() in _LEAD_WORDS:
        words.pop(0)
    while len(words) > 1 and words[-1].lower() in _POLITE:
        words.pop()
    if len(words) > max_words:
        words = words[: max_words - 1]
        while len(words) > 1 and words[-1].lower() in _DANGLING:
            words.pop()
    if not words:
        return "New session"
    title = " ".join(words).rstrip(".,;:!?")
    return title[0].upper() + title[1:]


def title(body: JSON) -> str:
    return json.dumps({"title": short_title(_first_user_text(body))}, ensure_ascii=False)


def topic(body: JSON) -> str:
    # The request pre-fills "{": the answer is the rest of the object.
    name = short_title(_first_user_text(body), max_words=4)
    return '"isNewTopic": true, "title": ' + json.dumps(name, ensure_ascii=False) + "}"


# -- bash command prefix -------------------------------------------------------------------

# Anything that could make the shell run a second command, or substitute one, is injection
# as far as an allowlist of prefixes is concerned (the policy's own examples agree).
_INJECTION = re.compile(r"`|\$\(|\$\{|[;&|<>\n\r]")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Tools whose second word is a subcommand that changes what they do.
_SUBCOMMANDS = frozenset(
    (
        "git npm yarn pnpm bun docker podman kubectl cargo go pip pip3 uv poetry brew apt apt-get gh "
        "terraform helm dotnet mvn gradle systemctl conda rustup deno"
    ).split()
)
# Subcommands whose bare form only reads, so the whole command is a fair prefix.
_READ_ONLY = frozenset(
    {("git", "status"), ("git", "diff"), ("git", "log"), ("git", "branch"), ("git", "show")}
)
_RUNNERS = frozenset({"npm", "yarn", "pnpm", "bun"})
# Plain commands: the first word is the prefix, whatever follows.
_SIMPLE = frozenset(
    (
        "cat cd ls find grep rg sleep pwd echo head tail wc sort uniq diff less more file stat du df "
        "which whoami pytest python python3 node ruby perl java mkdir touch cp mv rm chmod tree sed "
        "awk curl wget make env true false date basename dirname realpath tar unzip zip jq"
    ).split()
)


def command_prefix(command: str) -> str:
    command = command.strip()
    if not command or _INJECTION.search(command):
        return "command_injection_detected" if command else "none"
    try:
        tokens = shlex.split(command)
    except ValueError:
        return "command_injection_detected"
    env = []
    while tokens and _ASSIGNMENT.match(tokens[0]):
        env.append(tokens.pop(0))
    if not tokens:
        return "none"
    prefix = _prefix_of(tokens)
    if prefix is None:
        return "none"
    return " ".join([*env, prefix])


def _prefix_of(tokens: list[str]) -> str | None:
    cmd, rest = tokens[0], tokens[1:]
    if cmd in _SIMPLE:
        return cmd
    sub = rest[0] if rest and _is_word(rest[0]) else None
    if cmd in _SUBCOMMANDS:
        if sub is None:
            return None
        if cmd in _RUNNERS and sub == "run":
            # "npm run lint" alone has no prefix; with arguments the script is part of it.
            return f"{cmd} run {rest[1]}" if len(rest) > 2 and _is_word(rest[1]) else None
        if len(rest) == 1 and (cmd, sub) not in _READ_ONLY:
            return None
        return f"{cmd} {sub}"
    if sub is not None:
        # An unknown tool with a subcommand-like word: two words, if more follows.
        return f"{cmd} {sub}" if len(rest) > 1 else None
    return cmd


def _is_word(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][\w-]*", token))


def bash_prefix(body: JSON) -> str:
    text = _first_user_text(body)
    found = re.findall(r"^Command: (.*)$", text, re.M)
    return command_prefix(found[-1]) if found else "none"


# -- file paths ----------------------------------------------------------------------------

# Commands that show file contents; for anything else the client wants no paths at all.
_SHOWS_CONTENTS = frozenset("cat head tail less more bat nl tac sed awk grep rg diff".split())
_GIT_SHOWS = frozenset({"diff", "show", "blame"})


def file_paths(body: JSON) -> str:
    text = _first_user_text(body)
    m = re.search(r"^Command: (.*)$", text, re.M)
    paths: list[str] = []
    shows = False
    if m:
        try:
            tokens = shlex.split(m.group(1))
        except ValueError:
            tokens = []
        if tokens:
            cmd = tokens[0]
            shows = cmd in _SHOWS_CONTENTS or (cmd == "git" and len(tokens) > 1 and tokens[1] in _GIT_SHOWS)
            if shows:
                paths = [t for t in tokens[1:] if _looks_like_path(t)]
    listed = "\n".join(dict.fromkeys(paths))
    return (
        f"<is_displaying_contents>\n{'true' if shows else 'false'}\n</is_displaying_contents>\n\n"
        f"<filepaths>\n{listed + chr(10) if listed else ''}</filepaths>"
    )


def _looks_like_path(token: str) -> bool:
    if token.startswith("-") or "=" in token:
        return False
    return "/" in token or bool(re.search(r"\.[A-Za-z0-9]{1,8}$", token))


ANSWERS: Mapping[str, Callable[[JSON], str]] = {
    "title": title,
    "topic": topic,
    "bash_prefix": bash_prefix,
    "file_paths": file_paths,
}
