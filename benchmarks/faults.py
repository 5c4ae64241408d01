"""Issue 11 §2: replicas and faults, proven on this machine; prints a PASS/FAIL table.

One dev server (on its database file, WAL), 2 ``incident-worker`` and 2
``incident-http`` processes and the fake Slack (``benchmarks/_cluster.py``);
the demo policy's seconds-scale clocks, with the storm cap raised so every test
alert opens its own incident. Alerts go through the webhooks (alternating
replicas, as a load balancer would), responders' commands through the
``incident`` CLI. Four faults, one after the other, on the same incidents:

1. **Worker ``kill -9`` in the middle of deliveries** (Slack answers in 0.2 s, so
   deliveries are in flight), restarted ``--worker-outage`` seconds later.
2. **HTTP replica ``kill -9`` under load**: the load generator retries a broken
   or refused request on the other replica.
3. **Dev server ``kill -9``**, restarted on its database file ``--server-outage``
   seconds later; the webhooks and ``/healthz`` are probed meanwhile.
4. **Slack answering 503 to every call** for ``--slack-outage`` seconds.

Clock checks read each incident's timeline through the ``view`` query: every
page and stakeholder update that came due is matched with its timeline entry
(due times derived from the policy as the workflow derives them), so a missed,
doubled or late timer shows. Slack is counted by the notification key in each
message's metadata, per Slack channel.

    .venv/bin/python -m benchmarks.faults                      # ~8 minutes
    .venv/bin/python -m benchmarks.faults --slack-outage 20    # shorter
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import _clocks
from benchmarks._cluster import Cluster, http_status, running_cluster
from benchmarks._stack import TOKEN, Sender, percentile, verdict
from domain.policy import Policy, policy_from_mapping
from starters.cli.session import CliError, Incidents

ROOT = Path(__file__).resolve().parent.parent
GENERIC = "/webhooks/generic"
LATE_BEYOND_RESTART = 5.0
"""Seconds a timer may fire after the later of its due time and the worker's restart."""

POLICY_OVERRIDES = """
[alerts]
max_new_incidents_per_minute = 1000   # every test alert opens its own incident
"""


def fault_policy() -> str:
    """The demo policy (seconds-scale clocks) with the storm cap out of the way."""
    return (ROOT / "examples" / "demo-policy.toml").read_text(encoding="utf-8") + POLICY_OVERRIDES


def now() -> datetime:
    """The wall clock, which is the workflows' clock too (one machine)."""
    return datetime.now(UTC)


# ------------------------------------------------------------------ results


@dataclass
class Row:
    """One line of the table."""

    fault: str
    claim: str
    ok: bool
    detail: str


@dataclass
class Run:
    """What the faults left behind."""

    rows: list[Row] = field(default_factory=list)
    incidents: dict[str, str] = field(default_factory=dict)
    """Alert key → the incident its first 2xx named."""
    notes: list[str] = field(default_factory=list)
    requests: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    """Incident → when a responder's ack or update for it was sent."""

    async def command(self, cluster: Cluster, *args: str) -> tuple[int, str]:
        """A responder's CLI command about incident ``args[1]``, its time noted."""
        self.requests[args[1]].append(now())
        return await cluster.cli(*args)

    def check(self, fault: str, claim: str, ok: bool, detail: str) -> None:
        self.rows.append(Row(fault, claim, ok, detail))
        print(f"  {verdict(ok)}  {claim}: {detail}", flush=True)


# ------------------------------------------------------------------ alerts


@dataclass
class Sent:
    """One alert and what became of it."""

    key: str
    severity: str
    attempts: int = 0
    broken: int = 0
    """Attempts whose connection broke mid-request (the answer, if any, was lost)."""
    refused: int = 0
    """Attempts whose connection was refused (nothing was sent)."""
    firing: bool = True
    statuses: list[int] = field(default_factory=list)
    incident: str | None = None
    alert: str | None = None
    """The alert key the answer named."""


def alert_body(key: str, severity: str, *, firing: bool = True) -> bytes:
    """A generic webhook body."""
    body = {
        "title": f"fault proof {key}",
        "status": "firing" if firing else "resolved",
        "severity": severity,
        "service": "faults",
        "dedup_key": key,
    }
    return json.dumps(body).encode()


def _request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {GENERIC} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def deliver(
    cluster: Cluster, sent: Sent, senders: list[Sender], first: int, *, attempts: int = 40
) -> Sent:
    """Post until a 2xx, moving to the other replica when a connection breaks."""
    body = alert_body(sent.key, sent.severity, firing=sent.firing)
    replica = first
    for _ in range(attempts):
        sent.attempts += 1
        port = cluster.http_ports[replica]
        try:
            response = await senders[replica].send(_request(port, body))
        except ConnectionRefusedError:
            sent.refused += 1
            replica = (replica + 1) % len(senders)
            continue
        except (OSError, asyncio.IncompleteReadError):
            sent.broken += 1
            replica = (replica + 1) % len(senders)
            await asyncio.sleep(0.2)
            continue
        sent.statuses.append(response.status)
        if 200 <= response.status < 300:
            outcome = response.json()["incidents"][0]
            sent.incident = outcome["incident_id"]
            sent.alert = outcome["alert"]
            return sent
        await asyncio.sleep(min(response.retry_after or 1.0, 2.0))
    return sent


async def send_all(cluster: Cluster, alerts: list[Sent]) -> list[Sent]:
    """Send ``alerts`` at once, each on connections of its own, alternating replicas."""
    pools = [[Sender(port) for port in cluster.http_ports] for _ in alerts]
    try:
        return await asyncio.gather(
            *(
                deliver(cluster, alert, pool, first=i % len(pool))
                for i, (alert, pool) in enumerate(zip(alerts, pools, strict=True))
            )
        )
    finally:
        for sender in itertools.chain.from_iterable(pools):
            sender.close()


async def open_incidents(cluster: Cluster, run: Run, keys: list[str], severity: str) -> list[str]:
    """One new incident per key through the webhooks."""
    sent = await send_all(cluster, [Sent(key, severity) for key in keys])
    ids = []
    for alert in sent:
        if alert.incident is None:
            raise SystemExit(f"alert {alert.key} was not accepted: {alert.statuses}")
        run.incidents[alert.key] = alert.incident
        ids.append(alert.incident)
    return ids


# ------------------------------------------------------------------ clocks


async def views(cluster: Cluster, ids: list[str]) -> dict[str, Any]:
    """Each incident's ``view`` (None for one that cannot be read)."""
    incidents = Incidents(await cluster.connect(), timeout=30)
    out: dict[str, Any] = {}
    for incident_id in ids:
        try:
            out[incident_id] = await incidents.view(incident_id)
        except CliError as error:
            out[incident_id] = None
            print(f"    cannot read {incident_id}: {error}", flush=True)
    return out


async def clock_report(
    cluster: Cluster, run: Run, ids: list[str], policy: Policy, start: datetime, until: datetime
) -> tuple[_clocks.ClockReport, dict[str, Any]]:
    """Pages and updates due in [start, until) over ``ids``, matched with their timelines."""
    read = await views(cluster, ids)
    found = _clocks.report(read, policy, start=start, until=until, requests=run.requests)
    return found, read


# ------------------------------------------------------------------ Slack


@dataclass
class SlackPost:
    channel: str
    key: str
    incident: str
    kind: str
    ts: float


def slack_posts(cluster: Cluster) -> list[SlackPost]:
    """Every message the fake Slack holds that carries a notification key, in post order."""
    posts = []
    for channel in cluster.slack.channels.values():
        for message in channel.messages:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if "key" in payload:
                posts.append(
                    SlackPost(
                        channel.id,
                        str(payload["key"]),
                        str(payload.get("incident", "")),
                        str(payload.get("kind", "")),
                        float(message["ts"]),
                    )
                )
    return sorted(posts, key=lambda p: p.ts)


@dataclass
class SlackReport:
    expected: int
    delivered: int
    missing: list[str]
    doubled: list[tuple[str, str, int]]
    posts: list[SlackPost]


def slack_report(cluster: Cluster, incident_ids: set[str]) -> SlackReport:
    """Every outbox notification of ``incident_ids`` against what Slack holds."""
    expected = {r["key"] for r in cluster.outbox_records() if r["incident"]["id"] in incident_ids}
    posts = [p for p in slack_posts(cluster) if p.incident in incident_ids]
    counts = Counter((p.channel, p.key) for p in posts)
    delivered = {p.key for p in posts}
    return SlackReport(
        expected=len(expected),
        delivered=len(expected & delivered),
        missing=sorted(expected - delivered),
        doubled=[(c, k, n) for (c, k), n in counts.items() if n > 1],
        posts=posts,
    )


async def wait_slack(cluster: Cluster, incident_ids: set[str], timeout: float) -> SlackReport:
    """Until Slack holds every notification the outbox has for ``incident_ids``."""
    deadline = time.monotonic() + timeout
    while True:
        report = slack_report(cluster, incident_ids)
        if not report.missing or time.monotonic() > deadline:
            return report
        await asyncio.sleep(1.0)


def order_violations(cluster: Cluster, posts: list[SlackPost]) -> tuple[list[str], int, int]:
    """Messages Slack got out of order per incident: (violations, priority, informational).

    Priority messages (pages, SLA breaches, updates, responders' messages) must
    appear in the order they were created, informational ones likewise, and no
    informational message may appear before a priority message created before it.
    """
    records = {r["key"]: r for r in cluster.outbox_records()}
    first: dict[str, SlackPost] = {}
    for post in posts:
        first.setdefault(post.key, post)
    by_incident: dict[str, list[tuple[int, bool, float]]] = defaultdict(list)
    for key, post in first.items():
        if key in records:
            number = int(key.rsplit("/", 1)[1])
            by_incident[post.incident].append((number, bool(records[key]["priority"]), post.ts))
    violations: list[str] = []
    priority = informational = 0
    for incident, messages in by_incident.items():
        messages.sort(key=lambda m: m[2])
        priority += sum(1 for m in messages if m[1])
        informational += sum(1 for m in messages if not m[1])
        for index, (number, urgent, _) in enumerate(messages):
            later = messages[index + 1 :]
            if any(n < number and u == urgent for n, u, _ in later):
                violations.append(f"{incident}/{number} before an older message of its class")
            if not urgent and any(n < number and u for n, u, _ in later):
                violations.append(f"informational {incident}/{number} before an older page")
    return violations, priority, informational


# ------------------------------------------------------------------ faults


def owed_rows(run: Run, fault: str, report: _clocks.ClockReport, when: str) -> None:
    """One row for pages and one for stakeholder updates owed ``when``."""
    for kind, name in (("page", "page"), ("update", "stakeholder update")):
        part = report.kind(kind)
        run.check(
            fault,
            f"no {name} due {when} is missed or doubled",
            bool(part.dues) and not part.missing and not part.doubled,
            f"{len(part.dues)} due: {len(part.fired)} fired, {len(part.missing)} missing, "
            f"{len(part.doubled)} twice"
            + (f" [{part.describe_missing()}]" if part.missing else ""),
        )


async def worker_kill(cluster: Cluster, run: Run, policy: Policy, outage: float) -> list[str]:
    """Fault 1; returns the incidents it opened."""
    print("\n1. worker kill -9 in the middle of deliveries", flush=True)
    cluster.slack.latency = 0.2
    opened = time.monotonic()
    ids = await open_incidents(cluster, run, [f"w-{n}" for n in range(1, 9)], "P1")
    for incident_id in ids[:4]:
        code, output = await run.command(cluster, "ack", incident_id)
        if code:
            run.notes.append(f"ack {incident_id} failed: {output}")
    await asyncio.sleep(max(0.0, 13 - (time.monotonic() - opened)))
    more = await open_incidents(cluster, run, [f"w-{n}" for n in range(9, 13)], "P1")
    ids += more
    await asyncio.sleep(0.3)
    recent = time.monotonic() - 1.0
    in_flight = sum(1 for c in cluster.slack.calls if c.at > recent)
    before = len(cluster.slack.calls)
    killed_at = now()
    cluster.workers[0].kill9()
    print(f"    killed worker 1 at {killed_at:%H:%M:%S.%f} ({in_flight} Slack calls in the "
          "last second)", flush=True)  # fmt: skip
    responders = asyncio.gather(
        run.command(cluster, "update", ids[0], "Rolling back while a worker is down"),
        run.command(cluster, "ack", more[0]),
        run.command(cluster, "update", ids[1], "Second update during the outage"),
    )
    await asyncio.sleep(max(0.0, outage - (now() - killed_at).total_seconds()))
    cluster.workers[0].start()
    restarted_at = now()
    await cluster.wait_workers(2)
    print(f"    restarted worker 1 at {restarted_at:%H:%M:%S} (outage "
          f"{(restarted_at - killed_at).total_seconds():.1f} s)", flush=True)  # fmt: skip
    commands = await responders
    await asyncio.sleep(35)
    until = now() - timedelta(seconds=8)
    report, read = await clock_report(cluster, run, ids, policy, killed_at, until)
    continued = [
        i
        for i, v in read.items()
        if v is not None and not v.closed and any(e.at > killed_at for e in v.timeline)
    ]
    failed_commands = [out for code, out in commands if code]
    fault = "worker kill -9"
    run.check(
        fault,
        "every incident continues on the other worker",
        len(continued) == len(ids) and not failed_commands,
        f"{len(continued)}/{len(ids)} incidents wrote their timeline after the kill; "
        f"{len(commands) - len(failed_commands)}/{len(commands)} CLI commands during the "
        "outage succeeded" + (f" ({failed_commands[0]})" if failed_commands else ""),
    )
    owed_rows(run, fault, report.between(killed_at, restarted_at), "during the outage")
    beyond = [(f.at - max(d.due, restarted_at)).total_seconds() for d, f in report.fired]
    lateness = [(f.at - d.due).total_seconds() for d, f in report.fired]
    worst = max(beyond, default=float("nan"))
    run.check(
        fault,
        f"no timer fires more than {LATE_BEYOND_RESTART:g} s late beyond the restart",
        bool(beyond) and worst <= LATE_BEYOND_RESTART,
        f"max {worst:.2f} s after max(due, restart); lateness p50 "
        f"{percentile(lateness, 0.5):.2f} s, max {max(lateness, default=float('nan')):.2f} s "
        f"over {len(lateness)} firings due since the kill",
    )
    slack = await wait_slack(cluster, set(ids), timeout=90)
    lookups = sum(1 for c in cluster.slack.calls[before:] if c.method == "conversations.history")
    run.check(
        fault,
        "every Slack message posted exactly once",
        not slack.missing and not slack.doubled and slack.expected > 0,
        f"{slack.delivered}/{slack.expected} notifications in Slack, "
        f"{len(slack.doubled)} posted twice in a channel"
        + (f" (e.g. {slack.doubled[0]})" if slack.doubled else "")
        + (f"; missing e.g. {slack.missing[:3]}" if slack.missing else "")
        + f"; {lookups} retried deliveries looked for their earlier post",
    )
    cluster.slack.latency = 0.0
    return ids


async def http_kill(cluster: Cluster, run: Run, seconds: float, rate: float) -> list[str]:
    """Fault 2; returns the incidents it opened."""
    print("\n2. HTTP replica kill -9 under load", flush=True)
    known = list(run.incidents)
    new_keys = (f"h-{n}" for n in itertools.count(1))
    results: list[Sent] = []
    queue: asyncio.Queue[Sent | None] = asyncio.Queue()
    senders_n = 4

    async def sender(index: int) -> None:
        senders = [Sender(port) for port in cluster.http_ports]
        try:
            while (sent := await queue.get()) is not None:
                results.append(await deliver(cluster, sent, senders, index % len(senders)))
        finally:
            for s in senders:
                s.close()

    tasks = [asyncio.create_task(sender(i)) for i in range(senders_n)]
    started = time.monotonic()
    killed = restarted = False
    produced = 0
    while (elapsed := time.monotonic() - started) < seconds:
        if not killed and elapsed > seconds / 4:
            cluster.https[1].kill9()
            killed = True
            print(f"    killed HTTP replica 2 at {elapsed:.1f} s", flush=True)
        if killed and not restarted and elapsed > seconds * 3 / 4:
            cluster.https[1].start()
            restarted = True
            print(f"    restarted HTTP replica 2 at {elapsed:.1f} s", flush=True)
        key = next(new_keys) if produced % 4 == 0 or not known else random.choice(known)
        if key.startswith("h-"):
            known.append(key)
        await queue.put(Sent(key, "P3"))
        produced += 1
        await asyncio.sleep(max(0.0, started + produced / rate - time.monotonic()))
    for _ in tasks:
        await queue.put(None)
    await asyncio.gather(*tasks)
    await cluster.wait_http(1)
    answered = [s for s in results if s.incident is not None]
    broken = [s for s in results if s.broken]
    by_key: dict[str, set[str]] = defaultdict(set)
    for sent in answered:
        by_key[sent.key].add(sent.incident or "")
        run.incidents.setdefault(sent.key, sent.incident or "")
    new_ids = sorted({s.incident for s in answered if s.key.startswith("h-") and s.incident})
    read = await views(cluster, sorted({i for ids in by_key.values() for i in ids}))
    holders: dict[str, set[str]] = defaultdict(set)
    for incident_id, view in read.items():
        for alert in view.alerts if view is not None else []:
            holders[alert.key].add(incident_id)
    absent = [
        s
        for s in answered
        if s.incident is None
        or read.get(s.incident) is None
        or s.incident not in holders.get(s.alert or "", set())
    ]
    run.check(
        "HTTP replica kill -9",
        "each alert answered 2xx exists in an incident afterwards",
        bool(answered) and not absent and len(answered) == len(results),
        f"{len(answered)}/{len(results)} alerts answered 2xx ({len(results) / seconds:.1f}/s "
        f"over {seconds:g} s, {sum(s.attempts for s in results)} requests); "
        f"{len(absent)} not found in the incident they were answered with",
    )
    twice = [k for k, ids in by_key.items() if len(ids) > 1]
    retried = [s for s in results if s.broken or s.refused]
    landed_twice = [s.key for s in retried if len(holders.get(s.alert or "", set())) != 1]
    run.check(
        "HTTP replica kill -9",
        "alerts whose connection broke are retried and land once",
        bool(retried) and not landed_twice and not twice,
        f"{len(broken)} alerts lost their connection mid-request and "
        f"{len([s for s in retried if not s.broken])} more were refused; all were re-sent to "
        f"the other replica; {len(landed_twice)} of them are in other than exactly one "
        f"incident; {len(twice)} keys answered with two incidents",
    )
    return new_ids


async def server_kill(
    cluster: Cluster, run: Run, policy: Policy, ids: list[str], outage: float
) -> list[str]:
    """Fault 3; returns the incidents it opened."""
    print("\n3. dev server kill -9, restart on its database file", flush=True)
    fresh = await open_incidents(cluster, run, ["v-1", "v-2", "v-3"], "P1")
    await asyncio.sleep(8)  # their escalation pages come due during the outage
    ids = [*ids, *fresh]
    running = [i for i, v in (await views(cluster, ids)).items() if v is not None and not v.closed]
    killed_at = now()
    cluster.server.kill9()
    print(f"    killed the dev server at {killed_at:%H:%M:%S} with {len(running)} incidents "
          "running", flush=True)  # fmt: skip
    probes: list[tuple[float, int | None]] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def probe(port: int, method: str, path: str, body: bytes = b"") -> None:
        status = await http_status(port, method, path, body)
        probes.append((time.monotonic(), status))

    async def keep_probing() -> None:
        for n in itertools.count(1):
            for port in cluster.http_ports:
                body = alert_body(f"down-{n}-{port}", "P3")
                in_flight.add(asyncio.create_task(probe(port, "POST", GENERIC, body)))
                in_flight.add(asyncio.create_task(probe(port, "GET", "/healthz")))
            await asyncio.sleep(2.0)

    prober = asyncio.create_task(keep_probing())
    await asyncio.sleep(max(0.0, outage - (now() - killed_at).total_seconds()))
    prober.cancel()
    down_until = time.monotonic()
    await cluster.start_server()
    restarted_at = now()
    print(f"    restarted the dev server at {restarted_at:%H:%M:%S} (outage "
          f"{(restarted_at - killed_at).total_seconds():.1f} s)", flush=True)  # fmt: skip
    await cluster.wait_workers(2, timeout=120)
    polling_at = now()
    print(f"    both workers polling again {(polling_at - restarted_at).total_seconds():.1f} s "
          "after the restart", flush=True)  # fmt: skip
    await asyncio.gather(*in_flight)
    await asyncio.sleep(40)
    until = now() - timedelta(seconds=8)
    report, read = await clock_report(cluster, run, running, policy, killed_at, until)
    fault = "dev server kill -9"
    after = report.between(restarted_at, until)
    resumed = [
        i
        for i in running
        if read.get(i) is not None and any(e.at > restarted_at for e in read[i].timeline)
    ]
    run.check(
        fault,
        "every running incident resumes",
        len(resumed) == len(running) and bool(running) and not after.missing,
        f"{len(resumed)}/{len(running)} answer the view query and wrote their timeline "
        f"after the restart; {len(after.fired)}/{len(after.dues)} pages and updates due after "
        "the restart fired",
    )
    during = report.between(killed_at, restarted_at)
    early = [f for _, f in during.fired if f.at < restarted_at]
    owed_rows(run, fault, during, "during the outage")
    delays = [(f.at - restarted_at).total_seconds() for _, f in during.fired]
    run.check(
        fault,
        "each timer due during the outage fires after the restart",
        bool(delays) and not early,
        f"{len(delays)} fired {percentile(delays, 0.5):.2f} s (p50) / "
        f"{max(delays, default=float('nan')):.2f} s (max) after the restart, "
        f"{len(early)} before it",
    )
    statuses = Counter(status for at, status in probes if at <= down_until)
    run.check(
        fault,
        "the webhooks (and /healthz) answer 503 while Temporal is down",
        bool(probes) and set(statuses) == {503},
        ", ".join(f"{status}: {count}" for status, count in statuses.items())
        + f" over {statuses.total()} probes answered during the outage",
    )
    return fresh


async def slack_outage(
    cluster: Cluster, run: Run, ids: list[str], outage: float, recovery: float
) -> None:
    """Fault 4."""
    print(f"\n4. Slack answers 503 for {outage:g} s", flush=True)
    started = now()
    cluster.slack.go_down()
    more = await open_incidents(cluster, run, [f"s-{n}" for n in range(1, 5)], "P1")
    await run.command(cluster, "ack", more[0])
    await run.command(cluster, "update", more[0], "Slack is down, this must still arrive in order")
    recoveries = [Sent(key, "P1", firing=False) for key in ("w-1", "w-2", "w-3", "s-1")]
    pools = [[Sender(port) for port in cluster.http_ports] for _ in recoveries]
    await asyncio.gather(
        *(deliver(cluster, r, pool, 0) for r, pool in zip(recoveries, pools, strict=True))
    )
    for sender in itertools.chain.from_iterable(pools):
        sender.close()
    await asyncio.sleep(max(0.0, outage - (now() - started).total_seconds()))
    cluster.slack.come_back()
    recovered_at = now()
    failed = sum(1 for c in cluster.slack.calls if c.status >= 500)
    print(f"    Slack back at {recovered_at:%H:%M:%S}; {failed} calls answered 503", flush=True)
    everyone = set(ids) | set(more)
    report = await wait_slack(cluster, everyone, timeout=recovery)
    waited = (now() - recovered_at).total_seconds()
    queued = [
        r
        for r in cluster.outbox_records()
        if r["incident"]["id"] in everyone
        and started <= datetime.fromisoformat(r["at"]) <= recovered_at
    ]
    run.check(
        "Slack 5xx",
        "every message delivered once",
        not report.missing and not report.doubled and bool(queued),
        f"{len(queued)} messages created during the outage; {report.delivered}/"
        f"{report.expected} of all in Slack {waited:.0f} s after recovery, "
        f"{len(report.doubled)} posted twice in a channel"
        + (f"; missing e.g. {report.missing[:3]}" if report.missing else ""),
    )
    violations, priority, informational = order_violations(cluster, report.posts)
    pages = sum(1 for r in queued if r["kind"] == "page")
    run.check(
        "Slack 5xx",
        "in order per incident, pages (priority messages) first",
        not violations and pages > 0,
        f"{priority} priority and {informational} informational messages over "
        f"{len({p.incident for p in report.posts})} incidents ({pages} pages during the "
        f"outage); {len(violations)} out of order"
        + (f" (e.g. {violations[0]})" if violations else ""),
    )


async def main(options: argparse.Namespace) -> bool:
    """Run the faults in order; True when every check passed."""
    policy_text = fault_policy()
    policy = policy_from_mapping(tomllib.loads(policy_text), source="fault policy")
    run = Run()
    async with running_cluster(
        name="faults", policy_toml=policy_text, keep=options.keep
    ) as cluster:
        print(f"cluster: dev server {cluster.address} ({cluster.data_dir}/temporal.db, WAL), "
              f"2 workers, HTTP on {cluster.http_ports}, fake Slack {cluster.slack.api_url}",
              flush=True)  # fmt: skip
        only = set(options.only or ["worker", "http", "server", "slack"])
        ids: list[str] = []
        if "worker" in only:
            ids += await worker_kill(cluster, run, policy, options.worker_outage)
        if "http" in only:
            ids += await http_kill(cluster, run, options.http_seconds, options.rate)
        if "server" in only:
            ids += await server_kill(cluster, run, policy, ids, options.server_outage)
        if "slack" in only:
            await slack_outage(cluster, run, ids, options.slack_outage, options.recovery)
    print(
        "\nfault                  claim                                                     result"
    )
    for row in run.rows:
        print(f"{row.fault:22} {row.claim:58} {verdict(row.ok)}")
    for note in run.notes:
        print(f"note: {note}")
    return all(row.ok for row in run.rows) and bool(run.rows)


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker-outage", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--http-seconds", type=float, default=24.0, help="load duration (24)")
    parser.add_argument("--rate", type=float, default=8.0, help="alerts/s during it (8)")
    parser.add_argument("--server-outage", type=float, default=20.0, help="seconds (20)")
    parser.add_argument("--slack-outage", type=float, default=120.0, help="seconds (120)")
    parser.add_argument("--recovery", type=float, default=180.0, help="seconds to wait (180)")
    parser.add_argument("--only", action="append", choices=["worker", "http", "server", "slack"])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main(_options())) else 1)
