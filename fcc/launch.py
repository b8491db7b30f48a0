"""The `fcc` executable. Claude Code runs `fcc statusline` after every turn, so that command
starts without the CLI's imports (typer, rich, the catalog); everything else goes to fcc.cli."""

from __future__ import annotations

import sys


def main() -> None:
    # httpx's package imports its own command-line client when click, rich and pygments are
    # installed (typer and rich bring them): ~50 ms of every start for a tool fcc never runs.
    # A None entry makes that one import fail, and httpx then defines a stub in its place.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    args = sys.argv[1:]
    if args[:1] == ["statusline"] and not any(a.startswith("-") for a in args[1:]):
        from fcc.commands.statusline import main as statusline

        sys.exit(statusline())
    from fcc.cli import main as cli

    cli()
