"""``GET /metrics``: the incident metrics in the Prometheus exposition format.

Served by the HTTP service (``incident-http``). Every figure is derived from
Temporal visibility (:class:`starters.metrics_cache.VisibilityCache`), never counted
as events happen: any number of replicas, restarts and workflow replays give the
same totals. A scrape refreshes the cache when it is older than ``max_age``
seconds; each counter and histogram series keeps the highest value this process
has exported, so it never goes backwards (an incident whose severity changed still
counts under its old severity too). Definitions: README, "Metrics".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from temporalio.client import Client

from domain.metrics import (
    ActionRow,
    IncidentRow,
    find_repeats,
    is_open,
    is_resolved,
    time_to_acknowledge,
    time_to_detect,
    time_to_mitigate,
    time_to_resolve,
)
from domain.models import Phase, Severity
from domain.policy import MetricsPolicy
from domain.routing import AlertSource
from starters.metrics_cache import VisibilityCache

log = logging.getLogger("incidents.metrics")

BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800)
"""Histogram bucket bounds in seconds (30 s to a week)."""

SOURCES = ("cli", *(source.value for source in AlertSource))
"""The ``source`` label's values; anything else is ``other`` (labels stay bounded)."""

DURATIONS: dict[str, tuple[str, Callable[[IncidentRow], float | None]]] = {
    "incidents_time_to_detect_seconds": (
        "Declared − impact start (measurable ones).",
        time_to_detect,
    ),
    "incidents_time_to_acknowledge_seconds": (
        "First acknowledgement − declared.",
        time_to_acknowledge,
    ),
    "incidents_time_to_mitigate_seconds": (
        "First entry into Monitor − impact start.",
        time_to_mitigate,
    ),
    "incidents_time_to_resolve_seconds": ("Resolved − impact start.", time_to_resolve),
}
"""The duration histograms (resolved incidents only, like the means), by severity."""

Labels = tuple[str, ...]


def _source(row: IncidentRow) -> str:
    return row.source if row.source in SOURCES else "other"


def _histogram(values: Iterable[float]) -> tuple[list[int], float]:
    """Cumulative counts per bucket (and +Inf last) and the sum."""
    values = list(values)
    counts = [sum(v <= bound for v in values) for bound in BUCKETS]
    return [*counts, len(values)], sum(values)


def _by_severity(
    rows: Iterable[IncidentRow], value: Callable[[IncidentRow], float]
) -> dict[Severity, float]:
    totals = dict.fromkeys(Severity, 0.0)
    for row in rows:
        totals[row.severity] += value(row)
    return totals


def incident_counters(
    rows: Sequence[IncidentRow], rules: MetricsPolicy
) -> dict[str, dict[Labels, float]]:
    """Counter values: each a count of incidents (or pages) in visibility."""
    repeats = Counter(r.kind for r in find_repeats(rows, window=rules.repeat_window).values())
    ack = _by_severity(rows, lambda r: r.ack_sla_missed)
    resolve = _by_severity(rows, lambda r: r.resolve_sla_missed)
    pages = _by_severity(rows, lambda r: r.pages_sent)
    return {
        "incidents_declared": _by_severity_and_source(rows),
        "incidents_resolved": _by_severity_and_source(r for r in rows if is_resolved(r)),
        "incidents_dismissed": _by_severity_and_source(r for r in rows if r.dismissed),
        "incidents_sla_breaches": {
            **{("acknowledge", s.value): n for s, n in ack.items()},
            **{("resolve", s.value): n for s, n in resolve.items()},
        },
        "incidents_pages": {(s.value,): n for s, n in pages.items()},
        "incidents_repeats": {(kind,): repeats[kind] for kind in ("root_cause", "alert_group")},
    }


def action_counters(items: Sequence[ActionRow]) -> dict[str, dict[Labels, float]]:
    """Counter values of closed action items."""
    done = [a for a in items if a.status == "done"]
    on_time = sum(a.completed_at is not None and a.completed_at <= a.due for a in done)
    return {
        "incidents_action_items_completed": {("true",): on_time, ("false",): len(done) - on_time},
        "incidents_action_items_dropped": {(): sum(a.status == "dropped" for a in items)},
    }


def _by_severity_and_source(rows: Iterable[IncidentRow]) -> dict[Labels, float]:
    """Counts for every severity and source, zeros included (a series exists from the
    start, so ``increase()`` sees its first incident)."""
    counts = Counter((r.severity.value, _source(r)) for r in rows)
    return {(s.value, src): counts[(s.value, src)] for s in Severity for src in (*SOURCES, "other")}


def histograms(rows: Sequence[IncidentRow]) -> dict[str, dict[Labels, tuple[list[int], float]]]:
    """Bucket counts and sums of each duration over the resolved incidents, by severity."""
    resolved = [r for r in rows if is_resolved(r)]
    result: dict[str, dict[Labels, tuple[list[int], float]]] = {}
    for name, (_, measure) in DURATIONS.items():
        result[name] = {}
        for severity in Severity:
            values = [measure(r) for r in resolved if r.severity is severity]
            result[name][(severity.value,)] = _histogram(v for v in values if v is not None)
    return result


def gauges(
    rows: Sequence[IncidentRow],
    items: Sequence[ActionRow],
    *,
    unmeasured: int,
    rules: MetricsPolicy,
    now: datetime,
) -> dict[str, dict[Labels, float]]:
    """Gauge values: what is open now, and the policy's targets."""
    open_now = Counter((r.phase.value, r.severity.value) for r in rows if is_open(r))
    phases = [phase.value for phase in Phase if phase.is_open]
    mttr: dict[Labels, float] = {
        ("mttr", s.value): t.total_seconds() for s, t in rules.mttr_targets.items()
    }
    return {
        "incidents_open": {(p, s.value): open_now[(p, s.value)] for p in phases for s in Severity},
        "incidents_unmeasured": {(): unmeasured},
        "incidents_action_items_open": {(): sum(a.status == "open" for a in items)},
        "incidents_action_items_overdue": {
            (): sum(a.status == "open" and a.due < now for a in items)
        },
        "incidents_target_seconds": {**mttr, ("mttd", "all"): rules.mttd_target.total_seconds()},
        "incidents_target_ratio": {("action_items_on_time",): rules.action_item_target},
        "incidents_target_repeats": {(): rules.max_repeats},
    }


class Snapshot:
    """Every series' value computed from one read of visibility."""

    def __init__(
        self,
        rows: Sequence[IncidentRow],
        items: Sequence[ActionRow],
        *,
        unmeasured: int,
        rules: MetricsPolicy,
        now: datetime,
    ) -> None:
        self.counters = incident_counters(rows, rules) | action_counters(items)
        """Counter values by name and label values."""
        self.histograms = histograms(rows)
        """Cumulative bucket counts (``+Inf`` last) and sum, by name and severity."""
        self.gauges = gauges(rows, items, unmeasured=unmeasured, rules=rules, now=now)
        """Gauge values by name and label values."""


class HighWater:
    """The highest value each counter and histogram series has had in this process."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, Labels, str], float] = {}

    def keep(self, name: str, labels: Labels, part: str, value: float) -> float:
        """``value``, or the higher one exported before for the same series."""
        key = (name, labels, part)
        highest = max(self._seen.get(key, value), value)
        self._seen[key] = highest
        return highest


COUNTER_HELP = {
    "incidents_declared": (
        "Incidents declared, by current severity and source.",
        ("severity", "source"),
    ),
    "incidents_resolved": ("Incidents resolved (not dismissed).", ("severity", "source")),
    "incidents_dismissed": ("Incidents dismissed as false alarms.", ("severity", "source")),
    "incidents_sla_breaches": (
        "Incidents that missed an SLA, by kind (acknowledge, resolve).",
        ("kind", "severity"),
    ),
    "incidents_pages": ("Escalation pages sent.", ("severity",)),
    "incidents_repeats": ("Repeat incidents, by kind (root_cause, alert_group).", ("kind",)),
    "incidents_action_items_completed": (
        "Action items done, by whether by their due date.",
        ("on_time",),
    ),
    "incidents_action_items_dropped": ("Action items dropped with a reason.", ()),
}
GAUGE_HELP = {
    "incidents_open": ("Incidents open now, by phase and severity.", ("phase", "severity")),
    "incidents_unmeasured": ("Incidents without measures (first release), in no other figure.", ()),
    "incidents_action_items_open": ("Action items open now.", ()),
    "incidents_action_items_overdue": ("Action items open past their due date now.", ()),
    "incidents_target_seconds": (
        "The policy's targets for MTTR (per severity) and MTTD.",
        ("figure", "severity"),
    ),
    "incidents_target_ratio": (
        "The policy's target share of action items done on time.",
        ("figure",),
    ),
    "incidents_target_repeats": ("Repeat incidents a month may have and still be healthy.", ()),
}


class IncidentCollector(Collector):
    """Renders the latest :class:`Snapshot` (see :meth:`refresh`) for the registry."""

    def __init__(
        self, client: Callable[[], Awaitable[Client]], *, rules: MetricsPolicy, max_age: float
    ) -> None:
        self._client = client
        self._rules = rules
        self._max_age = max_age
        self._cache = VisibilityCache()
        self._snapshot: Snapshot | None = None
        self._refreshed_at = 0.0
        self._refresh_seconds = 0.0
        self._failures = 0
        self._lock = asyncio.Lock()
        self._high = HighWater()

    async def refresh(self) -> None:
        """Re-read visibility if the snapshot is older than ``max_age`` (one read at a time;
        a failed read keeps the previous snapshot and is counted)."""
        async with self._lock:
            if self._snapshot is not None and time.monotonic() - self._refreshed_at < self._max_age:
                return
            started = time.monotonic()
            try:
                await self._cache.refresh(await self._client())
            except Exception:  # noqa: BLE001 - any failure: serve the last figures, say so
                self._failures += 1
                log.warning("metrics: reading visibility failed", exc_info=True)
                return
            snapshot = Snapshot(
                self._cache.incidents,
                self._cache.actions,
                unmeasured=self._cache.unmeasured,
                rules=self._rules,
                now=datetime.now(UTC),
            )
            self.show(snapshot, took=time.monotonic() - started)

    def show(self, snapshot: Snapshot, *, took: float = 0.0) -> None:
        """Serve ``snapshot`` from now on (read in ``took`` seconds)."""
        self._snapshot = snapshot
        self._refreshed_at = time.monotonic()
        self._refresh_seconds = took

    def collect(self) -> Iterator[Metric]:
        """The series of the latest snapshot (none before the first successful read)."""
        failures = CounterMetricFamily(
            "incidents_metrics_refresh_failures", "Failed reads of visibility."
        )
        failures.add_metric([], self._failures)
        yield failures
        snapshot = self._snapshot
        if snapshot is None:
            return
        age = GaugeMetricFamily("incidents_metrics_age_seconds", "Age of the figures served.")
        age.add_metric([], time.monotonic() - self._refreshed_at)
        yield age
        took = GaugeMetricFamily(
            "incidents_metrics_refresh_seconds", "How long the last read of visibility took."
        )
        took.add_metric([], self._refresh_seconds)
        yield took
        yield from self._counters(snapshot)
        yield from self._histograms(snapshot)
        for name, (text, labels) in GAUGE_HELP.items():
            gauge = GaugeMetricFamily(name, text, labels=list(labels))
            for values, value in sorted(snapshot.gauges[name].items()):
                gauge.add_metric(list(values), value)
            yield gauge

    def _counters(self, snapshot: Snapshot) -> Iterator[Metric]:
        for name, (text, labels) in COUNTER_HELP.items():
            counter = CounterMetricFamily(name, text, labels=list(labels))
            for values, value in sorted(snapshot.counters[name].items()):
                counter.add_metric(list(values), self._high.keep(name, values, "", value))
            yield counter

    def _histograms(self, snapshot: Snapshot) -> Iterator[Metric]:
        for name, (text, _) in DURATIONS.items():
            family = HistogramMetricFamily(name, text, labels=["severity"])
            for labels, (counts, total) in sorted(snapshot.histograms[name].items()):
                bounds = [*(str(float(b)) for b in BUCKETS), "+Inf"]
                buckets = [
                    (bound, self._high.keep(name, labels, bound, count))
                    for bound, count in zip(bounds, counts, strict=True)
                ]
                family.add_metric(
                    list(labels), buckets, self._high.keep(name, labels, "sum", total)
                )
            yield family


def metrics_router(
    client: Callable[[], Awaitable[Client]], *, rules: MetricsPolicy, max_age: float = 30.0
) -> APIRouter:
    """``GET /metrics``, refreshed from visibility at most every ``max_age`` seconds."""
    router = APIRouter(tags=["metrics"])
    collector = IncidentCollector(client, rules=rules, max_age=max_age)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    @router.get("/metrics", summary="Incident metrics (Prometheus exposition format)")
    async def metrics() -> Response:
        """Counters, histograms and gauges of every incident, from Temporal visibility."""
        await collector.refresh()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
