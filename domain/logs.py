"""Logging setup shared by every process: log lines cannot be forged or drive a terminal.

Logged values include alert titles, labels and responders' text. A title with a
newline could forge a log line; one with terminal escapes could retitle or clear
the operator's terminal. :class:`SanitizingFilter` escapes such characters in
every record, whichever logger it comes from, and indents continuation lines,
so every line that starts in the first column is a real record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from domain.text import escape_unsafe

FORMAT = "%(asctime)s %(name)s %(message)s"
CONTINUATION = "    "
"""Prefix of a record's second and later lines (multi-line messages, tracebacks)."""

_UNRETRIEVED = ("Task exception was never retrieved", "Future exception was never retrieved")
_CORO = re.compile(r"coro=<([\w.<>]+)\(")


def _indent(text: str) -> str:
    first, *rest = escape_unsafe(text, keep_newlines=True).split("\n")
    return "\n".join([first, *(CONTINUATION + line for line in rest)])


def _escaped_args(args: tuple[object, ...] | Mapping[str, object] | None) -> Any:
    """Text arguments are values, never layout: their newlines are escaped too."""
    if isinstance(args, tuple):
        return tuple(escape_unsafe(arg) if isinstance(arg, str) else arg for arg in args)
    if isinstance(args, Mapping):
        return {
            key: escape_unsafe(value) if isinstance(value, str) else value
            for key, value in args.items()
        }
    return args


class SanitizingFilter(logging.Filter):
    """Escapes control, bidi and zero-width characters in a record, on a handler.

    Text arguments are escaped whole (newlines included); the message is then
    formatted here (``msg % args``) and replaced by its escaped form, its own
    newlines kept but the lines after the first indented. A traceback is
    escaped and indented too. An exception nobody retrieved from a background
    task becomes one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place (once); never drops it."""
        if getattr(record, "sanitized", False):
            return True
        record.args = _escaped_args(record.args)
        message = record.getMessage().rstrip()
        if record.name == "asyncio" and record.exc_info and message.startswith(_UNRETRIEVED):
            error = record.exc_info[1]
            coro = _CORO.search(message)
            task = f"background task {coro.group(1)}()" if coro else "background task"
            message = " ".join(f"{task} failed: {type(error).__name__}: {error}".split())
            record.exc_info = None
            record.exc_text = None
        elif record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = _indent(message)
        record.args = None
        if record.exc_text:
            record.exc_text = CONTINUATION + _indent(record.exc_text)
        if record.stack_info:
            record.stack_info = CONTINUATION + _indent(record.stack_info)
        record.sanitized = True
        return True


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr at ``level`` through :class:`SanitizingFilter` (idempotent)."""
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(known, SanitizingFilter) for known in handler.filters):
            handler.addFilter(SanitizingFilter())
