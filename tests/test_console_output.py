"""Untrusted text cannot forge log lines or drive the terminal (issue 8 §4).

Console notifications are folded and stripped; every logged value goes
through the sanitizing filter of :func:`domain.logs.setup_logging`.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.outbox import OutboxChannel
from activities.templates import standard_templates
from domain.logs import SanitizingFilter
from domain.models import IncidentFacts, Notification, NotificationKind, Phase, Severity
from domain.text import escape_unsafe, strip_unsafe

ROOT = Path(__file__).parent.parent
FORGED = "2026-11-27 05:00:00,000 incidents.outbox all clear"
HOSTILE = f"Checkout\x1b]0;owned\x07\x1b[2J\r\n{FORGED}\u202egnp.exe\u200b\u2066x\u2069\x9b"
"""Retitles and clears the terminal, forges a log line, reorders and hides text."""
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def notification() -> Notification:
    at = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    facts = IncidentFacts(
        id="INC-20261127-7QK3",
        title=HOSTILE,
        severity=Severity.P1,
        phase=Phase.DETECT,
        service=HOSTILE,
        commander=HOSTILE,
        impact=HOSTILE,
        declared_at=at,
    )
    return Notification(
        key="INC-20261127-7QK3/1",
        kind=NotificationKind.UPDATE,
        incident=facts,
        at=at,
        text=HOSTILE,
        actor=HOSTILE,
    )


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What the root logger writes through a sanitizing handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    handler.addFilter(SanitizingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def real_records(output: str) -> list[str]:
    """Lines that start a record (continuation lines are indented)."""
    return [line for line in output.splitlines() if line and not line.startswith(" ")]


def test_text_helpers() -> None:
    assert strip_unsafe("a\x1b[31mb\u202ec\u200bd\u2066e\x85f") == "a[31mbcdef"
    assert strip_unsafe(" a\r\n\tb \u2028c ", single_line=True) == "a b c"
    assert strip_unsafe("line 1\r\nline 2\tx") == "line 1\nline 2\tx"
    assert escape_unsafe("a\x1b\n\u202e") == "a\\x1b\\n\\u202e"
    assert escape_unsafe("a\nb\x07", keep_newlines=True) == "a\nb\\x07"
    assert escape_unsafe(escape_unsafe(HOSTILE)) == escape_unsafe(HOSTILE)


async def test_console_notifications_are_one_line_per_value_and_inert(
    tmp_path: Path, captured: io.StringIO
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    await OutboxChannel(outbox, standard_templates()).deliver(notification())

    [record] = [json.loads(line) for line in outbox.read_text().splitlines()]
    rendered = record["rendered"]
    assert "INCIDENT UPDATE" in rendered
    assert not UNSAFE.search(rendered), ascii(rendered)
    assert not any(line.startswith(FORGED) for line in rendered.splitlines())
    assert f"Checkout]0;owned[2J {FORGED}gnp.exex" in rendered
    assert record["incident"]["title"] == HOSTILE  # the outbox keeps the data as sent

    logged = captured.getvalue()
    assert not UNSAFE.search(logged), ascii(logged)
    assert [line.split(" ", 2)[2] for line in real_records(logged)] == [
        "incidents.outbox INC-20261127-7QK3/1"
    ]
    continuation = [line for line in logged.splitlines() if line.startswith("    ")]
    assert continuation == ["    " + line for line in rendered.splitlines()]


def test_every_logged_value_is_escaped(captured: io.StringIO) -> None:
    log = logging.getLogger("incidents.test")
    log.warning("alert %r opened by %s", HOSTILE, HOSTILE)
    log.info(f"f-string {HOSTILE}")
    log.info("mapping %(title)s", {"title": HOSTILE})
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.exception("failed on %s", HOSTILE)

    logged = captured.getvalue()
    assert not UNSAFE.search(logged), ascii(logged)
    assert "\\x1b]0;owned\\x07\\x1b[2J" in logged and "\\u202egnp.exe" in logged
    records = real_records(logged)
    assert [line.split(" ", 3)[3].split()[0] for line in records] == [
        "alert",
        "f-string",
        "mapping",
        "failed",
    ]
    assert "    Traceback (most recent call last):" in logged


def test_a_background_task_failure_is_one_line() -> None:
    program = """
import asyncio, gc, logging
from domain.logs import setup_logging

async def deliver():
    raise RuntimeError("Temporal did not accept the alert\\nsecond line")

async def main():
    for _ in range(3):
        asyncio.ensure_future(deliver())
    await asyncio.sleep(0.1)
    gc.collect()

setup_logging()
asyncio.run(main())
"""
    run = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    lines = run.stderr.splitlines()
    assert len(lines) == 3, run.stderr
    assert all(
        line.endswith(
            "asyncio background task deliver() failed: "
            "RuntimeError: Temporal did not accept the alert second line"
        )
        for line in lines
    ), run.stderr
    assert "Traceback" not in run.stderr and "never retrieved" not in run.stderr
