"""The responder CLI ``incident`` (console script ``starters.cli:main``)."""

from starters.cli.app import app, main

__all__ = ["app", "main"]
