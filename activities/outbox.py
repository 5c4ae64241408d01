"""A notification channel that needs no credentials: log lines plus a JSONL outbox.

The console medium is read in terminals: every text value is folded to one line
and stripped of control, bidi and zero-width characters before it is rendered,
so an alert title can neither start a line of its own nor drive the terminal.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from activities.templates import Templates
from domain.models import Notification, NotifyResult
from domain.text import strip_unsafe

log = logging.getLogger("incidents.outbox")


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return strip_unsafe(value, single_line=True)
    if isinstance(value, list):
        return [_fold(item) for item in value]
    if isinstance(value, dict):
        return {key: _fold(item) for key, item in value.items()}
    return value


def render_console(templates: Templates, notification: Notification) -> str:
    """The console text of ``notification``, safe to print to a terminal."""
    folded = Notification.model_validate(_fold(notification.model_dump()))
    return strip_unsafe(templates.render("console", folded))


class OutboxChannel:
    """Writes each notification as a readable log line and one JSON line in the outbox.

    The outbox is append-only; a notification already written (same key) is not
    written again when the activity is retried.
    """

    name = "outbox"

    def __init__(self, path: Path, templates: Templates) -> None:
        self._path = path
        self._templates = templates
        self._written: set[str] | None = None
        self._lock = asyncio.Lock()

    def _load_keys(self) -> set[str]:
        keys: set[str] = set()
        if self._path.exists():
            with self._path.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        keys.add(str(json.loads(line)["key"]))
                    except (ValueError, KeyError, TypeError):
                        continue
        return keys

    def _append(self, notification: Notification, text: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        record = notification.model_dump(mode="json", exclude={"refs"})
        record["rendered"] = text
        with self._path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    async def deliver(self, notification: Notification) -> NotifyResult:
        """Log the rendered message and append it to the outbox once."""
        async with self._lock:
            if self._written is None:
                self._written = await asyncio.to_thread(self._load_keys)
            if notification.key in self._written:
                return NotifyResult()
            text = render_console(self._templates, notification)
            await asyncio.to_thread(self._append, notification, text)
            self._written.add(notification.key)
        lines = text.splitlines()
        # One argument per line: logged values are escaped whole, newlines included,
        # and this message's line breaks are its layout.
        log.info("\n".join(["%s"] * (len(lines) + 1)), notification.key, *lines)
        return NotifyResult()
