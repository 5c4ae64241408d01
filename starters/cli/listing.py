"""Finding incidents through Temporal visibility (``incident list``)."""

from __future__ import annotations

from datetime import datetime

from temporalio.client import Client, WorkflowExecution

from domain import launch
from domain import search_attributes as sa
from domain.models import Phase, Severity, _Model


class IncidentSummary(_Model):
    """One row of ``incident list`` (also its ``--json`` output)."""

    id: str
    """Incident ID (the workflow ID)."""
    title: str
    """Title, from the workflow memo."""
    severity: str
    """Current severity (``IncidentSeverity``)."""
    phase: str
    """Current phase (``IncidentPhase``)."""
    service: str = ""
    """Affected service (``IncidentService``)."""
    commander: str | None = None
    """Incident commander, once someone acknowledged (``IncidentCommander``)."""
    sla_breached: bool = False
    """Whether an SLA was missed (``IncidentSlaBreached``)."""
    status: str
    """Workflow status: running, completed, or how it ended abnormally: terminated,
    failed, timed_out, canceled (its clocks then stopped)."""
    detected_at: datetime | None = None
    """When the problem was detected, or declared (``IncidentDetectedAt``)."""
    acknowledged_at: datetime | None = None
    """When it was acknowledged (``IncidentAcknowledgedAt``)."""
    resolved_at: datetime | None = None
    """When it was resolved or dismissed (``IncidentResolvedAt``)."""


def list_query(*, include_closed: bool, phase: Phase | None, severity: Severity | None) -> str:
    """The visibility query for the filters (values come from enums, so need no escaping)."""
    clauses = [launch.INCIDENT_TYPES_QUERY]
    if include_closed:
        # A run that continued as new is the same incident as its successor.
        clauses.append("ExecutionStatus != 'ContinuedAsNew'")
    else:
        clauses.append("ExecutionStatus = 'Running'")
    if phase is not None:
        clauses.append(f"{sa.PHASE.name} = '{phase.value}'")
    if severity is not None:
        clauses.append(f"{sa.SEVERITY.name} = '{severity.value}'")
    return " AND ".join(clauses)


async def summarize(execution: WorkflowExecution) -> IncidentSummary:
    """An incident row from a visibility record."""
    attributes = execution.typed_search_attributes
    title = await execution.memo_value("title", "", type_hint=str)
    return IncidentSummary(
        id=execution.id,
        title=title,
        severity=attributes.get(sa.SEVERITY) or "",
        phase=attributes.get(sa.PHASE) or "",
        service=attributes.get(sa.SERVICE) or "",
        commander=attributes.get(sa.COMMANDER) or None,
        sla_breached=bool(attributes.get(sa.SLA_BREACHED)),
        status=execution.status.name.lower() if execution.status else "unknown",
        detected_at=attributes.get(sa.DETECTED_AT) or execution.start_time,
        acknowledged_at=attributes.get(sa.ACKNOWLEDGED_AT),
        resolved_at=attributes.get(sa.RESOLVED_AT),
    )


async def list_incidents(
    client: Client,
    *,
    include_closed: bool,
    phase: Phase | None,
    severity: Severity | None,
    limit: int,
) -> list[IncidentSummary]:
    """Incidents matching the filters, most recently detected first."""
    query = list_query(include_closed=include_closed, phase=phase, severity=severity)
    rows = [
        await summarize(execution) async for execution in client.list_workflows(query, limit=limit)
    ]
    rows.sort(key=lambda row: row.detected_at.timestamp() if row.detected_at else 0.0, reverse=True)
    return rows
