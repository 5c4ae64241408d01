"""When a long-lived workflow should continue as new."""

from __future__ import annotations

from temporalio import workflow


def history_full(*, max_events: int, max_bytes: int | None = None) -> bool:
    """Whether the server suggests continue-as-new, or the run reached its own limits."""
    info = workflow.info()
    return (
        info.is_continue_as_new_suggested()
        or info.get_current_history_length() >= max_events
        or (max_bytes is not None and info.get_current_history_size() >= max_bytes)
    )
