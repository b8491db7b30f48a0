"""`fcc init`: a commented config.yaml and a keys.env template, never overwritten silently."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from fcc.engine.catalog.providers import Provider
from fcc.engine.catalog.resources import schema_path
from fcc.engine.catalog.secrets import ENV_FILE_NAME
from fcc.engine.errors import FccError

CONFIG_TEMPLATE = """\
# yaml-language-server: $schema={schema}
# fcc configuration. Every key is optional: delete what you don't need.
# Check it with `fcc check`; see the routes it gives with `fcc models`.

server:
  host: 127.0.0.1     # loopback only; any other address requires auth_token
  port: 8082
  auth_token: null    # set one (8+ chars) to require ANTHROPIC_AUTH_TOKEN to match it

# Where each Claude tier goes: PROVIDER/MODEL (the model part may contain '/').
# Claude Code's opus/sonnet/haiku model names pick the tier; anything else uses default.
tiers:
  opus: {opus}
  sonnet: {sonnet}
  haiku: {haiku}
  default: {default}
  # A tier can also say whether to ask for reasoning, and what to try next:
  # opus:
  #   model: nvidia_nim/qwen/qwen3-coder-480b-a35b-instruct
  #   thinking: false
  #   fallbacks: [openrouter/qwen/qwen3-coder:free]

# Tried in order when a tier's model fails (rate limit, outage, timeout):
# fallbacks:
#   default: [groq/openai/gpt-oss-120b]

# Change a catalog provider, or add your own OpenAI- or Anthropic-compatible server:
# providers:
#   ollama: {{base_url: "http://gpu-box:11434"}}
#   mybox: {{transport: openai_chat, base_url: "http://127.0.0.1:9000/v1", auth: none}}

# Local answers to Claude Code's busywork requests (titles, warmups…); turn one off with:
# probes:
#   title: false
"""


class InitResult(msgspec.Struct, frozen=True):
    directory: Path
    written: tuple[Path, ...]


class InitRefused(FccError):
    pass


def env_template(providers: list[Provider]) -> str:
    lines = [
        "# Provider keys for fcc. Variables set in the environment take precedence.",
        "# Fill in only the providers you use; this file is readable by you alone.",
        "",
    ]
    for p in sorted(providers, key=lambda p: p.id):
        if p.api_key_env:
            lines.append(f"# {p.display_name}" + (f": {p.docs}" if p.docs else ""))
            lines.append(f"{p.api_key_env}=")
    return "\n".join(lines) + "\n"


def scaffold(directory: Path, tiers: Mapping[str, str], providers: list[Provider], force: bool) -> InitResult:
    config = directory / "config.yaml"
    env = directory / ENV_FILE_NAME
    existing = [p for p in (config, env) if p.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise InitRefused(f"{names} already exists: keep it, or run `fcc init --force` to overwrite")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        config.write_text(
            CONFIG_TEMPLATE.format(schema=schema_path("config").as_uri(), **tiers), encoding="utf-8"
        )
        # Created private before any key is written into it.
        fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(env_template(providers))
        os.chmod(env, 0o600)
    except OSError as exc:
        raise InitRefused(
            f"{directory}: cannot write there ({exc.strerror}): set XDG_CONFIG_HOME or fix permissions"
        ) from exc
    return InitResult(directory, (config, env))
