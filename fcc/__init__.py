"""fcc: run the Claude Code client on any model backend."""

__version__ = "0.1.0"
