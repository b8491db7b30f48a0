"""LiteLLM's proxy as a contender: its own venv under bench/.cache, configured like fcc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VERSION = "1.106.2"
# LiteLLM fetches its model price map from the internet unless told not to; keep it local.
ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "DISABLE_SCHEMA_UPDATE": "True",
    # Its /v1/messages goes to OpenAI's Responses API unless told to use chat/completions,
    # which is what the upstream (and every OpenAI-compatible server fcc targets) speaks.
    "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True",
    # No master key: fcc runs without a token on loopback too, so neither pays for auth.
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
}


def venv_dir(cache: Path) -> Path:
    return cache / "litellm-venv"


def executable(cache: Path) -> Path:
    return venv_dir(cache) / "bin" / "litellm"


def install(cache: Path, log: Path) -> str | None:
    """Install the pinned LiteLLM proxy once; None on success, else why it failed."""
    venv = venv_dir(cache)
    marker = venv / f".installed-{VERSION}"
    if marker.exists() and executable(cache).exists():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={VERSION}"],
    ]
    with log.open("w", encoding="utf-8") as out:
        for step in steps:
            try:
                code = subprocess.run(step, stdout=out, stderr=out, timeout=900).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{' '.join(step[:3])}… failed: {exc}"
            if code != 0:
                return f"{' '.join(step[:3])}… exited with {code} (see {log})"
    marker.touch()
    return None


def write_config(path: Path, upstream_port: int, model_names: list[str], tokens: int) -> None:
    """One model_list entry per model name the fixtures use, all to the bench upstream."""
    entries = [
        {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/tokens-{tokens}",
                "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": "x",
            },
        }
        for name in sorted(set(model_names))
    ]
    config = {
        "model_list": entries,
        "litellm_settings": {"telemetry": False, "drop_params": True, "set_verbose": False},
        "general_settings": {},
    }
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML


def argv(cache: Path, config: Path, port: int) -> list[str]:
    return [str(executable(cache)), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
