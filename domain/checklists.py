"""Phase checklists: the process's Actions, Questions and criteria for each phase.

Every phase of ``docs/incident_response.md`` lists what responders do in it;
an incident carries those lists, posts each phase's list when it enters the
phase, and ticks an item when a responder says so (``incident check``) or when
the system itself did the work (an item's ``auto`` key names the fact that
ticks it, see :func:`auto_ticks`). The ``[checklists]`` policy replaces any
phase's list.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.models import Phase, _Model, cap_text

MAX_ITEMS = 30
"""Items one phase's checklist may hold (the policy is refused beyond it)."""
MAX_ITEM_TEXT = 200
"""Longest item text."""


class AutoTick(StrEnum):
    """Facts the system knows by itself, each able to tick an item."""

    SEVERITY = "severity"
    """The incident was declared with a severity."""
    ALERTS = "alerts"
    """Monitoring alerts are joined to the incident."""
    IMPACT = "impact"
    """Impact was recorded (users affected or services down)."""
    COMMANDER = "commander"
    """An incident commander acknowledged."""
    CHANNEL = "channel"
    """The incident's Slack channel exists."""
    FIX_STRATEGY = "fix_strategy"
    """A fix strategy was recorded."""
    FIX_DEPLOYED = "fix_deployed"
    """The incident entered Monitor: the fix is out."""
    ROOT_CAUSE = "root_cause"
    """A root cause was recorded."""
    ALERTS_QUIET = "alerts_quiet"
    """Every joined alert has recovered."""
    STATUS_PAGE = "status_page"
    """The status page shows the incident resolved."""
    CUSTOMERS = "customers"
    """The customer e-mail went out."""
    POSTMORTEM_SCHEDULED = "postmortem_scheduled"
    """The post-mortem review meeting is scheduled (or the post-mortem is recorded)."""


class ItemSpec(BaseModel):
    """One checklist item as the policy writes it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_ITEM_TEXT)
    """What to do, ask or check."""
    auto: AutoTick | None = None
    """The fact that ticks it without a responder, if any."""


def _items(*pairs: str | tuple[str, AutoTick]) -> list[ItemSpec]:
    return [
        ItemSpec(text=pair[0], auto=pair[1]) if isinstance(pair, tuple) else ItemSpec(text=pair)
        for pair in pairs
    ]


def _default_lists() -> dict[Phase, list[ItemSpec]]:
    return {
        Phase.DETECT: _items(
            ("Check monitoring alerts", AutoTick.ALERTS),
            "Verify user reports",
            ("Assess impact (users, revenue, data)", AutoTick.IMPACT),
            ("Declare severity level", AutoTick.SEVERITY),
            ("Assign IC (Incident Commander)", AutoTick.COMMANDER),
            ("Create incident channel", AutoTick.CHANNEL),
        ),
        Phase.INVESTIGATE: _items(
            "Check recent deployments",
            "Review error logs",
            "Check infrastructure metrics",
            "Query database for anomalies",
            "Test hypothesis",
            ("Document findings", AutoTick.ROOT_CAUSE),
            "Ask: what changed recently?",
            "Ask: when did this start?",
            "Ask: is it affecting all users or a subset?",
            "Ask: are there any patterns?",
            "Ask: what's different from normal?",
        ),
        Phase.FIX: _items(
            (
                "Choose a fix strategy: rollback, hotfix, scale, disable or redirect",
                AutoTick.FIX_STRATEGY,
            ),
            "Implement fix (code, config, infrastructure)",
            "Test fix in staging",
            ("Deploy to production", AutoTick.FIX_DEPLOYED),
            "Verify user impact reduced",
        ),
        Phase.MONITOR: _items(
            "Monitor error rates",
            "Check user reports",
            "Watch key metrics",
            "Stay on call",
            "Document observations",
            "Criterion: error rate < baseline",
            "Criterion: no new user reports",
            "Criterion: metrics returning to normal",
            ("Criterion: no related alerts", AutoTick.ALERTS_QUIET),
        ),
        Phase.RESOLVE: _items(
            "Verify all systems normal",
            ("Update status page", AutoTick.STATUS_PAGE),
            ("Notify customers", AutoTick.CUSTOMERS),
            "Thank the team",
            ("Schedule post-mortem (within 48hrs)", AutoTick.POSTMORTEM_SCHEDULED),
            "Close incident ticket",
        ),
    }


class ChecklistPolicy(BaseModel):
    """``[checklists]``: each phase's list; a phase left out keeps the process's list.

    Example: ``resolve = [{text = "Verify all systems normal"}, {text = "Update status
    page", auto = "status_page"}]``.
    """

    model_config = ConfigDict(extra="forbid")

    detect: list[ItemSpec] | None = None
    investigate: list[ItemSpec] | None = None
    fix: list[ItemSpec] | None = None
    monitor: list[ItemSpec] | None = None
    resolve: list[ItemSpec] | None = None

    @field_validator("detect", "investigate", "fix", "monitor", "resolve")
    @classmethod
    def _bounded(cls, items: list[ItemSpec] | None) -> list[ItemSpec] | None:
        if items is not None and len(items) > MAX_ITEMS:
            raise ValueError(f"at most {MAX_ITEMS} items per phase")
        return items

    def for_phase(self, phase: Phase) -> list[ItemSpec]:
        """The list of ``phase`` (empty for Dismissed)."""
        override: list[ItemSpec] | None = getattr(self, phase.value.lower(), None)
        if override is not None:
            return override
        return _default_lists().get(phase, [])


class ChecklistItem(_Model):
    """One item of an incident's checklist, and who ticked it."""

    text: str
    """What to do, ask or check."""
    auto: AutoTick | None = None
    """The fact that ticks it without a responder, if any."""
    done_at: datetime | None = None
    """When it was ticked."""
    done_by: str | None = None
    """Who ticked it: a responder, or ``system (<what did it>)``."""

    @property
    def done(self) -> bool:
        """Whether it is ticked."""
        return self.done_at is not None


Checklists = dict[Phase, list[ChecklistItem]]
"""An incident's checklists, by phase."""


def checklists_from(policy: ChecklistPolicy) -> Checklists:
    """Fresh, unticked checklists for every working phase."""
    return {
        phase: [
            ChecklistItem(text=cap_text(spec.text, MAX_ITEM_TEXT), auto=spec.auto)
            for spec in policy.for_phase(phase)
        ]
        for phase in (Phase.DETECT, Phase.INVESTIGATE, Phase.FIX, Phase.MONITOR, Phase.RESOLVE)
    }


def find_item(items: list[ChecklistItem], wanted: str) -> tuple[int | None, str | None]:
    """The index of the item ``wanted`` names (1-based number, or unique text), else why not.

    Text matches case-insensitively: an exact match wins, else a unique item
    containing it.
    """
    wanted = wanted.strip()
    if not wanted:
        return None, "name the item by its number or its text"
    if wanted.isdigit():
        number = int(wanted)
        if 1 <= number <= len(items):
            return number - 1, None
        return None, f"no item {number}; the list has {len(items)}"
    lowered = wanted.lower()
    exact = [i for i, item in enumerate(items) if item.text.lower() == lowered]
    if exact:
        return exact[0], None
    partial = [i for i, item in enumerate(items) if lowered in item.text.lower()]
    if len(partial) == 1:
        return partial[0], None
    if not partial:
        return None, f"no item matches {cap_text(wanted, 80)!r}"
    numbers = ", ".join(str(i + 1) for i in partial)
    return None, f"{cap_text(wanted, 80)!r} matches items {numbers}; give the number"


def open_items(items: list[ChecklistItem]) -> list[tuple[int, ChecklistItem]]:
    """The unticked items with their 1-based numbers."""
    return [(number, item) for number, item in enumerate(items, 1) if not item.done]
