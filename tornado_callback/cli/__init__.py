"""The command line, ``tornado-callback``: ``main`` parses and runs a command (cli/main.py)."""

from tornado_callback.cli.main import main

__all__ = ["main"]
