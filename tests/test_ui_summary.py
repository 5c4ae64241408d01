"""What the Temporal UI shows of an incident: its static summary and current details.

The summary is checked as a pure function and on a real dev server; the details
(progress line and deadlines) are read back with the same ``__temporal_workflow_metadata``
query ``temporal workflow metadata`` and the Web UI use, also after continue-as-new.
"""

from __future__ import annotations

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from domain.launch import SUMMARY_LIMIT, inert, static_summary
from domain.models import AcknowledgeInput, Declaration, NoteInput, PhaseInput, Severity
from domain.policy import Policy
from tests.conftest import new_worker
from tests.helpers import declare
from workflows.incident import IncidentWorkflow


def summary(title: str, service: str = "", severity: Severity = Severity.P1) -> str:
    return static_summary(Declaration(title=title, severity=severity, service=service))


def test_summary_names_severity_service_and_title() -> None:
    assert summary("Checkout returns 500s", "checkout") == "P1 · checkout · Checkout returns 500s"
    assert summary("Disk full", severity=Severity.P3) == "P3 · Disk full"


def test_summary_escapes_untrusted_text() -> None:
    text = summary("[pwn](https://evil.example)\n# heading \u202eevil", "svc_*a*")
    assert text == "P1 · svc\\_\\*a\\* · \\[pwn\\]\\(https://evil\\.example\\) \\# heading evil"


def test_summary_is_bounded_and_never_cut_inside_an_escape() -> None:
    long = summary("." * 1000, "s" * 500, Severity.P0)
    assert SUMMARY_LIMIT - 1 <= len(long) <= SUMMARY_LIMIT
    assert long.startswith("P0 · " + "s" * 39 + "… · \\.\\.")
    assert long.endswith("\\.…")  # a whole escape, then the ellipsis
    for limit in range(2, 12):
        cut = inert("a.b.c.d.e.f.g", limit)
        assert len(cut) <= limit and not cut.removesuffix("…").endswith("\\")


async def metadata(handle: object) -> WorkflowMetadata:
    result: WorkflowMetadata = await handle.query(  # type: ignore[attr-defined]
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return result


async def test_the_ui_reads_summary_and_progress_of_an_incident_in_fix(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    async with new_worker(client, max_cached_workflows=0) as worker:
        handle = await declare(client, worker, title="Checkout returns 500s", service="checkout")
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="fix")
        )
        described = await handle.describe()
        details = (await metadata(handle)).current_details

    assert await described.static_summary() == "P1 · checkout · Checkout returns 500s"
    lines = details.splitlines()
    assert lines[0] == "**P1 · Fix** — Checkout returns 500s"
    assert lines[1].startswith("Detect ✓ ") and " → Fix ● " in lines[1]
    assert lines[1].endswith(" → Monitor ○ → Resolve ○")
    assert "**Ack by:**" in details and "(met)" in details and "**IC:** bob" in details


async def test_a_continued_incident_publishes_its_progress_again(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    async with new_worker(client, policy=Policy(max_history_events=50)) as worker:
        handle = await declare(client, worker, title="Search is slow", service="search")
        first_run = (await handle.describe()).run_id
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        latest = first_run
        for n in range(40):
            await handle.execute_update(
                IncidentWorkflow.add_note, NoteInput(responder="bob", text=f"note {n}")
            )
            latest = (await handle.describe()).run_id
            if latest != first_run:
                break
        details = (await metadata(handle)).current_details

    assert latest != first_run, "the incident continued as new"
    assert details.splitlines()[1].startswith("Detect ✓ ")
    assert " → Investigate ● " in details
