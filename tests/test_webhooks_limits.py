"""What an untrusted request may cost, without a server: caps, cleaning, signatures."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from domain.routing import AlertSource, RoutingPolicy
from starters.webhooks.alertmanager import AlertmanagerPayload
from starters.webhooks.auth import (
    ReplayCache,
    authenticate,
    sign,
    sign_with_timestamp,
)
from starters.webhooks.body import parse
from starters.webhooks.errors import WebhookError
from starters.webhooks.generic import GenericAlert
from starters.webhooks.limits import (
    EVENT_LABEL_BYTES,
    EVENT_LABELS,
    MAX_DETAILS_DEPTH,
    MAX_MAP_ENTRIES,
    clean_label,
    compact_json,
)
from starters.webhooks.pagerduty import PagerDutyEvent
from tests.conftest import webhook_fixture

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TOKEN = SecretStr("t0ken")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = {f"level{level}": value, "pad": ["x" * 40] * 3}
    return value


# ------------------------------------------------------------- PagerDuty


def test_pagerduty_custom_details_are_cut_at_parse_time():
    event = webhook_fixture("pagerduty_trigger")
    event["payload"]["custom_details"] = {
        "deep": _nested(195),
        "many": list(range(10_000)),
        "long": "y" * 100_000,
        "huge": int("9" * 4000),
    }
    body = json.dumps(event).encode()
    started = time.perf_counter()
    parsed = parse(body, PagerDutyEvent)
    alert = parsed.incoming()
    elapsed = time.perf_counter() - started
    details = parsed.payload.custom_details if parsed.payload else None
    assert isinstance(details, dict)
    assert _depth(details) <= MAX_DETAILS_DEPTH + 1
    assert len(details["many"]) <= 51 and details["many"][-1].endswith("more")
    assert len(details["long"]) <= 1000
    assert details["huge"] == "<large number>"
    assert len(alert.description) <= 4000 and alert.description.startswith('{"deep":')
    assert "\n" not in alert.description  # compact, never indented
    assert elapsed < 0.5, elapsed


def test_compact_json_stops_at_its_limit():
    text = compact_json({"a": ["x" * 100] * 1000}, 500)
    assert len(text) == 500 and text.endswith("…")
    assert compact_json({"a": 1}, 500) == '{"a":1}'


# ---------------------------------------------------------- Alertmanager


def _notification(**changes: Any) -> dict[str, Any]:
    payload = webhook_fixture("alertmanager_firing")
    payload.update(changes)
    return payload


@pytest.mark.parametrize(
    "field", ["commonLabels", "commonAnnotations", "groupLabels", "alerts.0.labels"]
)
def test_label_maps_over_the_cap_are_refused_before_any_merge(field: str):
    labels = {f"l{i}": "v" for i in range(MAX_MAP_ENTRIES + 1)}
    payload = _notification()
    if field.startswith("alerts"):
        payload["alerts"][0]["labels"] = labels
    else:
        payload[field] = labels
    with pytest.raises(WebhookError) as raised:
        parse(json.dumps(payload).encode(), AlertmanagerPayload)
    assert raised.value.status == 422
    [problem] = raised.value.body.fields
    assert problem.field == field.replace(".0.", "[0].")
    assert f"at most {MAX_MAP_ENTRIES} entries" in problem.message


def test_seventy_thousand_common_labels_cost_milliseconds():
    """The issue's 37.7 s / 2.1 GB request: 70,000 common labels × 1,000 alerts."""
    common = {f"l{i}": "" for i in range(70_000)}
    alerts = [{"status": "firing", "labels": {}} for _ in range(1000)]
    body = json.dumps(_notification(commonLabels=common, alerts=alerts)).encode()
    assert len(body) < 1024 * 1024
    started = time.perf_counter()
    with pytest.raises(WebhookError) as raised:
        parse(body, AlertmanagerPayload)
    assert raised.value.status == 422
    assert time.perf_counter() - started < 1.0


def test_repeated_fingerprints_collapse_and_the_last_status_wins():
    """Issue 7: one notification repeating one fingerprint 1,000 times, alternating."""
    common = {f"l{i:02d}": f"v{i:02d}" * 125 for i in range(64)}  # 64 labels × 500 chars
    alerts = [
        {
            "status": "firing" if k % 2 == 0 else "resolved",
            "labels": {"alertname": "Amp"},
            "annotations": {"summary": "S" * 300},
            "fingerprint": "amp" if k < 999 else "other",
        }
        for k in range(1000)
    ]
    alerts[998]["labels"] = {"alertname": "Amp", "marker": "last"}
    payload = parse(
        json.dumps(_notification(commonLabels=common, alerts=alerts)).encode(), AlertmanagerPayload
    )
    incoming = payload.incoming(AlertSource.ALERTMANAGER, "fingerprint")
    assert [(a.alert_key, a.status) for a in incoming] == [("amp", "firing"), ("other", "resolved")]
    assert incoming[0].labels["marker"] == "last"
    assert incoming[0].shared_labels is incoming[1].shared_labels  # referenced, not copied
    delivery = incoming[0].delivery(RoutingPolicy(), received_at=NOW)
    labels = delivery.alert.labels
    assert len(labels) <= EVENT_LABELS
    assert sum(len(k.encode()) + len(v.encode()) for k, v in labels.items()) <= EVENT_LABEL_BYTES
    assert labels["alertname"] == "Amp"  # named labels come first
    assert len(delivery.alert.model_dump_json()) < 4000


def test_large_label_sets_keep_the_labels_routing_looks_at():
    routing = RoutingPolicy.model_validate(
        {"rules": [{"name": "team", "match": {"team": "blue"}, "severity": "P1"}]}
    )
    own = {f"l{i:03d}": "v" * 1000 for i in range(200)} | {"team": "blue"}
    payload = _notification()
    payload["alerts"][0]["labels"] = own
    payload["commonLabels"] = {f"c{i:03d}": "v" for i in range(250)} | {"service": "api"}
    [alert] = parse(json.dumps(payload).encode(), AlertmanagerPayload).incoming(
        AlertSource.ALERTMANAGER, "fingerprint"
    )
    delivery = alert.delivery(routing, received_at=NOW)
    assert (delivery.declaration.routing_rule, delivery.declaration.service) == ("team", "api")
    assert len(delivery.alert.labels) <= EVENT_LABELS


def test_control_characters_never_reach_service_labels_or_title():
    payload = _notification()
    payload["alerts"][0]["labels"] = {
        "alertname": "Disk\x00full",
        "service": "check\x00out\x1b[2J\u0085",
        "ba\x07d": "v\x00",
    }
    payload["alerts"][0]["annotations"] = {"summary": "Title\x00 with \x1b]0;pwned\x07 bell"}
    parsed = parse(json.dumps(payload).encode(), AlertmanagerPayload)
    [alert] = parsed.incoming(AlertSource.ALERTMANAGER, "fingerprint")
    delivery = alert.delivery(RoutingPolicy(), received_at=NOW)
    assert delivery.declaration.service == "checkout[2J"
    labels = delivery.alert.labels
    assert {k: labels[k] for k in ("alertname", "service", "bad")} == {
        "alertname": "Diskfull",
        "service": "checkout[2J",
        "bad": "v",
    }
    assert "\x00" not in delivery.declaration.title and "\x1b" not in delivery.declaration.title
    generic = GenericAlert(title="t\x00", service="mail\x00\x01").incoming(b"s")
    delivery = generic.delivery(RoutingPolicy(), received_at=NOW)
    assert delivery.declaration.service == "mail"
    assert clean_label("a\tb\nc\x7fd\x9f") == "abcd"


# -------------------------------------------------------------- signatures


def test_signed_timestamp_is_checked_and_gives_a_replay_key():
    body = b'{"a": 1}'
    now = 1_800_000_000
    stamp = str(now - 10)
    headers = {
        "x-signature-256": "sha256=" + sign_with_timestamp("t0ken", stamp, body),
        "x-signature-timestamp": stamp,
    }
    credential = authenticate(headers, body, TOKEN, now=now)
    assert credential.replay_key is not None
    assert authenticate(headers, body, TOKEN, now=now, require_timestamp=True) == credential
    # A body-only signature no longer passes once a timestamp is required.
    plain = {"x-signature-256": sign("t0ken", body)}
    assert authenticate(plain, body, TOKEN, now=now).replay_key is None
    with pytest.raises(WebhookError, match="must sign a fresh x-signature-timestamp"):
        authenticate(plain, body, TOKEN, now=now, require_timestamp=True)
    # Signing the body alone under a timestamp header is not the documented scheme.
    with pytest.raises(WebhookError):
        authenticate({**plain, "x-signature-timestamp": stamp}, body, TOKEN, now=now)
    old = str(now - 301)
    stale = {
        "x-signature-256": sign_with_timestamp("t0ken", old, body),
        "x-signature-timestamp": old,
    }
    with pytest.raises(WebhookError, match="more than 300s from the server's clock"):
        authenticate(stale, body, TOKEN, now=now)
    with pytest.raises(WebhookError, match="not a Unix time"):
        authenticate({**stale, "x-signature-timestamp": "yesterday"}, body, TOKEN, now=now)


def test_grafana_timestamp_is_required_when_configured():
    body = b"{}"
    signature = {"x-grafana-alerting-signature": sign("t0ken", body)}
    assert authenticate(signature, body, TOKEN, now=100).replay_key is None
    with pytest.raises(WebhookError) as raised:
        authenticate(signature, body, TOKEN, now=100, require_timestamp=True)
    assert raised.value.status == 401
    assert "x-grafana-alerting-timestamp" in raised.value.body.error
    stamped = {
        "x-grafana-alerting-signature": sign("t0ken", b"100:" + body),
        "x-grafana-alerting-timestamp": "100",
    }
    assert authenticate(stamped, body, TOKEN, now=150, require_timestamp=True).replay_key


def test_non_ascii_signatures_are_refused_not_raised():
    for header in ("x-signature-256", "x-grafana-alerting-signature", "authorization"):
        with pytest.raises(WebhookError) as raised:
            authenticate(
                {header: "v0=\xe9\xe9", "x-signature-timestamp": "100"}, b"", TOKEN, now=100
            )
        assert raised.value.status == 401


def test_replay_cache_remembers_for_its_window_and_forgets_released_ones():
    now = [0.0]
    cache = ReplayCache(ttl=600, capacity=3, clock=lambda: now[0])
    assert cache.claim("a") and not cache.claim("a")
    cache.release("a")
    assert cache.claim("a")
    now[0] = 601
    assert cache.claim("a")  # expired: the timestamp would be refused as stale anyway
    for key in ("b", "c", "d"):
        assert cache.claim(key)
    assert len(cache._seen) <= 3
