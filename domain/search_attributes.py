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

ALL = (
    PHASE,
    SEVERITY,
    SERVICE,
    COMMANDER,
    SLA_BREACHED,
    DETECTED_AT,
    ACKNOWLEDGED_AT,
    RESOLVED_AT,
)
"""Every custom search attribute, for registration on a server."""


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return flags
