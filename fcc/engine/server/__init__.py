"""The HTTP surface: Starlette routes, auth, and the one place errors become responses."""

from fcc.engine.server.app import create_app

__all__ = ["create_app"]
