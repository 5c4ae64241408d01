"""Applying ``incident set`` to the incident record: pure, deterministic, capped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.models import IncidentRecord, RecordInput, cap_text
from workflows.transitions import parse_fix_strategy

USERS_AFFECTED_TEXT = 200
"""Longest "users affected" text (a number or a share, with a word or two)."""
SERVICE_NAME = 100
"""Longest service name in services down."""
SHOWN = 80
"""Characters of a long text quoted in the timeline entry that records its change."""


def _normalised(command: RecordInput) -> dict[str, Any]:
    """The given fields as the record stores them (texts capped, names trimmed)."""
    values: dict[str, Any] = {}
    if command.users_affected is not None:
        values["users_affected"] = cap_text(command.users_affected.strip(), USERS_AFFECTED_TEXT)
    if command.services_down is not None:
        services = (cap_text(s.strip(), SERVICE_NAME) for s in command.services_down)
        values["services_down"] = list(dict.fromkeys(services))
    if command.data_loss is not None:
        values["data_loss"] = command.data_loss
    if command.revenue_impact is not None:
        values["revenue_impact"] = command.revenue_impact
    if command.customer_complaints is not None:
        values["customer_complaints"] = command.customer_complaints
    for name in ("root_cause", "resolution"):
        text = getattr(command, name)
        if text is not None:
            values[name] = cap_text(text.strip())
    if command.root_cause_key is not None:
        values["root_cause_key"] = command.root_cause_key
    if command.fix_strategy is not None:
        values["fix_strategy"] = parse_fix_strategy(command.fix_strategy)
    if command.impact_started is not None:
        values["impact_started"] = command.impact_started.astimezone(UTC)
    return values


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    if isinstance(value, float):
        return f"{value:,.2f}".removesuffix(".00")
    text = " ".join(str(value).split())
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def apply(record: IncidentRecord, command: RecordInput) -> list[str]:
    """Write the given fields into ``record``; returns one phrase per field that changed.

    The command must have passed ``transitions.check_record``.
    """
    changes: list[str] = []
    for name, value in _normalised(command).items():
        if getattr(record, name) == value:
            continue
        setattr(record, name, value)
        changes.append(f"{name.replace('_', ' ')} → {_shown(value)}")
    return changes
