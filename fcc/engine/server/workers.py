"""`fcc serve --workers N`: each worker process builds its app from what `fcc serve` was
given (the FCC_SERVE environment variable), and shares the state store with the others, so
every limit, quota, circuit and the dashboard are one across all of them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.applications import Starlette

from fcc.engine.catalog.config import Overrides, load_settings
from fcc.engine.catalog.secrets import ENV_FILE_NAME, KeyStore

ENV = "FCC_SERVE"


def describe(config: Path | None, overrides: Overrides) -> str:
    return json.dumps(
        {
            "config": str(config) if config else None,
            "host": overrides.host,
            "port": overrides.port,
            "tiers": dict(overrides.tiers),
        }
    )


def app() -> Starlette:
    """uvicorn's factory in each worker."""
    from fcc.engine.server.app import create_app
    from fcc.engine.server.reload import POLL, Source

    given = json.loads(os.environ[ENV])
    overrides = Overrides(host=given["host"], port=given["port"], tiers=given["tiers"])
    config = Path(given["config"]) if given["config"] else None
    settings = load_settings(config, overrides)
    keys = KeyStore(settings.config_dir / ENV_FILE_NAME)
    return create_app(settings, keys, source=Source(config, overrides), watch=POLL)
