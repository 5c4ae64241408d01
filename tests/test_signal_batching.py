"""Alerts bound for one incident share signals while one is in flight."""

from __future__ import annotations

import asyncio

import pytest

from domain.models import AlertEvent
from starters.webhooks.batching import MAX_BATCH, SignalBatcher, Status


class SlowIncident:
    """Takes a while per signal, like a signal RPC; records the batches it got."""

    def __init__(self, *, gone: bool = False, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.gone = gone
        self.fail = fail

    async def send(self, incident_id: str, items: list[tuple[Status, AlertEvent]]) -> bool:
        self.batches.append([alert.key for _, alert in items])
        await asyncio.sleep(0.05)
        if self.fail:
            raise RuntimeError("Temporal unavailable")
        return not self.gone


def _alert(n: int) -> AlertEvent:
    return AlertEvent(key=f"fp-{n}", source="alertmanager")


async def test_concurrent_alerts_share_signals_and_keep_their_order() -> None:
    incident = SlowIncident()
    batcher = SignalBatcher(incident.send)
    results = await asyncio.gather(
        *(batcher.signal("INC-1", "firing", _alert(n)) for n in range(250))
    )
    assert results == [True] * 250
    assert [key for batch in incident.batches for key in batch] == [f"fp-{n}" for n in range(250)]
    assert len(incident.batches) <= 4 and max(map(len, incident.batches)) <= MAX_BATCH


async def test_a_lone_alert_goes_at_once_and_a_gone_incident_answers_false() -> None:
    incident = SlowIncident(gone=True)
    batcher = SignalBatcher(incident.send)
    assert await batcher.signal("INC-2", "resolved", _alert(1)) is False
    assert incident.batches == [["fp-1"]]


async def test_every_waiter_of_a_failed_batch_sees_the_failure() -> None:
    incident = SlowIncident(fail=True)
    batcher = SignalBatcher(incident.send)
    results = await asyncio.gather(
        *(batcher.signal("INC-3", "firing", _alert(n)) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await batcher.signal("INC-3", "firing", _alert(9))  # the next one is tried again
    assert len(incident.batches) >= 2
