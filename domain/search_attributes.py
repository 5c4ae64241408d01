"""Custom search attributes that make incidents searchable in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

PHASE = SearchAttributeKey.for_keyword("IncidentPhase")
SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
SERVICE = SearchAttributeKey.for_keyword("IncidentService")
COMMANDER = SearchAttributeKey.for_keyword("IncidentCommander")
SLA_BREACHED = SearchAttributeKey.for_bool("IncidentSlaBreached")
DETECTED_AT = SearchAttributeKey.for_datetime("IncidentDetectedAt")
ACKNOWLEDGED_AT = SearchAttributeKey.for_datetime("IncidentAcknowledgedAt")
RESOLVED_AT = SearchAttributeKey.for_datetime("IncidentResolvedAt")
DELIVERY_FAILED = SearchAttributeKey.for_bool("IncidentDeliveryFailed")
"""Set when a page could not be delivered through some channel (see the timeline)."""
ACTION_INCIDENT = SearchAttributeKey.for_keyword("ActionIncident")
"""The incident an action item follows up."""
ACTION_OWNER = SearchAttributeKey.for_keyword("ActionOwner")
"""Who must do the action item (``@name``)."""
ACTION_STATUS = SearchAttributeKey.for_keyword("ActionStatus")
"""``open``, ``done`` or ``dropped``."""
ACTION_DUE_AT = SearchAttributeKey.for_int("ActionDueAt")
"""Due date in epoch seconds (an Int: every Datetime attribute is taken)."""

ALL = (
    PHASE,
    SEVERITY,
    SERVICE,
    COMMANDER,
    SLA_BREACHED,
    DETECTED_AT,
    ACKNOWLEDGED_AT,
    RESOLVED_AT,
    DELIVERY_FAILED,
    ACTION_INCIDENT,
    ACTION_OWNER,
    ACTION_STATUS,
    ACTION_DUE_AT,
)
"""Every custom search attribute, for registration on a server."""


KEYWORD_BYTES = 256
"""Longest Keyword search attribute value we write (Temporal refuses over 2,048 bytes and
terminates the workflow; SQL visibility also refuses NUL)."""


def keyword(value: str) -> str:
    """``value`` fit for a Keyword search attribute: no NUL, at most :data:`KEYWORD_BYTES`."""
    value = value.replace("\x00", "")
    encoded = value.encode("utf-8")
    if len(encoded) <= KEYWORD_BYTES:
        return value
    return encoded[:KEYWORD_BYTES].decode("utf-8", "ignore")


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return flags
