"""Payload models, normalisation and routing rules, without a server."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from domain.models import Severity
from domain.policy import PolicyError, policy_from_mapping
from domain.routing import AlertSource, RoutingPolicy
from starters.webhooks.alertmanager import AlertmanagerPayload
from starters.webhooks.alerts import plausible
from starters.webhooks.auth import authenticate, sign
from starters.webhooks.errors import WebhookError
from starters.webhooks.generic import GenericAlert
from starters.webhooks.pagerduty import PagerDutyEvent
from tests.conftest import WEBHOOK_FIXTURES

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _load(name: str, model: type) -> object:
    return model.model_validate_json((WEBHOOK_FIXTURES / f"{name}.json").read_bytes())


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("alertmanager_firing", AlertmanagerPayload),
        ("alertmanager_resolved", AlertmanagerPayload),
        ("grafana_firing", AlertmanagerPayload),
        ("grafana_resolved", AlertmanagerPayload),
        ("pagerduty_trigger", PagerDutyEvent),
        ("pagerduty_acknowledge", PagerDutyEvent),
        ("pagerduty_resolve", PagerDutyEvent),
        ("generic_firing", GenericAlert),
        ("generic_resolved", GenericAlert),
    ],
)
def test_every_documented_fixture_validates(name, model):
    assert _load(name, model) is not None


def test_alertmanager_alert_in_the_common_shape():
    payload = _load("alertmanager_firing", AlertmanagerPayload)
    assert isinstance(payload, AlertmanagerPayload)
    [alert] = payload.incoming(AlertSource.ALERTMANAGER, "fingerprint")
    assert (alert.dedup_key, alert.alert_key) == ("5f8d2a9c1b3e4d60", "5f8d2a9c1b3e4d60")
    assert alert.title == "Checkout error rate above 5%"
    assert alert.labels["service"] == "checkout"
    assert alert.links[1] == "https://runbooks.example.com/high-error-rate"
    [by_group] = payload.incoming(AlertSource.ALERTMANAGER, "groupKey")
    assert by_group.dedup_key == f"group:{payload.group_key}"
    assert by_group.alert_key == "5f8d2a9c1b3e4d60"


def test_alert_without_fingerprint_is_keyed_by_its_labels():
    payload = _load("alertmanager_firing", AlertmanagerPayload)
    assert isinstance(payload, AlertmanagerPayload)
    alert = payload.alerts[0].model_copy(update={"fingerprint": ""})
    same = alert.model_copy(update={"labels": dict(reversed(list(alert.labels.items())))})
    other = alert.model_copy(update={"labels": {**alert.labels, "instance": "checkout-2"}})
    assert alert.identity() == same.identity() != other.identity()
    assert alert.identity().startswith("labels-")


def test_alertmanager_zero_end_time_and_future_start_are_dropped():
    assert plausible(datetime(1, 1, 1, tzinfo=UTC), NOW) is None
    assert plausible(datetime(2999, 1, 1, tzinfo=UTC), NOW) is None
    assert plausible(datetime(2026, 11, 26, 11, 0, tzinfo=UTC), NOW) == datetime(
        2026, 11, 26, 11, 0, tzinfo=UTC
    )


def test_pagerduty_trigger_in_the_common_shape():
    event = _load("pagerduty_trigger", PagerDutyEvent)
    assert isinstance(event, PagerDutyEvent)
    alert = event.incoming()
    assert alert.alert_key == "srv01/mysql"
    assert alert.dedup_key == "e93facc04764012d7bfb002500d5d1a6\x00srv01/mysql"
    assert alert.labels["severity"] == "critical"
    assert alert.labels["service"] == "mysql"
    assert alert.labels["load avg"] == "0.75"
    assert alert.started_at == datetime(2026, 11, 26, 8, 42, 58, 315000, tzinfo=UTC)
    assert "https://dashboards.example.com/mysql" in alert.links


def test_generic_key_defaults_to_a_keyed_digest_outsiders_cannot_compute():
    secret, other = b"server-secret", b"another-secret"
    one = GenericAlert(title="Queue backlog", service="mail")
    assert one.key(secret) == GenericAlert(title="Queue backlog", service="mail").key(secret)
    assert one.key(secret) != GenericAlert(title="Queue backlog", service="sms").key(secret)
    assert one.key(secret) != one.key(other)
    public = hashlib.sha256(b"mail\x00Queue backlog").hexdigest()
    assert public[:24] not in one.key(secret)  # the old, computable key
    assert GenericAlert(title="t", dedup_key="k").key(secret) == "k"


def test_generic_severity_applies_when_no_rule_matches():
    routing = policy_from_mapping(
        {"routing": {"rules": [{"name": "exports", "match": {"service": "exports"}}]}}
    ).routing
    named = GenericAlert(title="t", severity="p0", service="mail").incoming(b"s")
    delivery = named.delivery(routing, received_at=NOW)
    assert (delivery.declaration.severity, delivery.declaration.routing_rule) == (
        Severity.P0,
        "default",
    )
    ruled = GenericAlert(title="t", severity="P0", service="exports").incoming(b"s")
    delivery = ruled.delivery(routing, received_at=NOW)
    assert (delivery.declaration.severity, delivery.declaration.routing_rule) == (
        Severity.P2,
        "exports",
    )


# ---------------------------------------------------------------- routing


def _routing(rules: list[dict[str, object]], **extra: object) -> RoutingPolicy:
    return policy_from_mapping({"routing": {"rules": rules, **extra}}).routing


def test_first_matching_rule_decides():
    routing = _routing(
        [
            {"name": "pagerduty-only", "sources": ["pagerduty"], "severity": "P3"},
            {"name": "critical", "match": {"severity": "critical"}, "severity": "P0"},
            {
                "name": "payments",
                "match_re": {"team": "pay.*"},
                "service": "payments",
                "targets": ["#payments"],
            },
        ]
    )
    route = routing.route(AlertSource.ALERTMANAGER, {"severity": "critical", "team": "payments"})
    assert (route.rule, route.severity) == ("critical", Severity.P0)
    route = routing.route(AlertSource.GRAFANA, {"team": "payments", "service": "api"})
    assert (route.rule, route.severity, route.service, route.targets) == (
        "payments",
        Severity.P2,
        "payments",
        ["#payments"],
    )
    assert routing.route(AlertSource.PAGERDUTY, {"severity": "critical"}).rule == "pagerduty-only"


def test_no_match_gives_the_default_route():
    routing = _routing([{"name": "x", "match": {"team": "x"}}], default_severity="P3")
    route = routing.route(AlertSource.GENERIC, {"service": "search"})
    assert (route.rule, route.severity, route.service) == ("default", Severity.P3, "search")


def test_regex_must_match_the_whole_value():
    routing = _routing([{"name": "pay", "match_re": {"team": "pay"}}])
    assert routing.route(AlertSource.GENERIC, {"team": "payments"}).rule == "default"


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"rules": [{"name": "x", "match_re": {"team": "("}}]}, "invalid regular expression"),
        ({"rules": [{"name": "x"}, {"name": "x"}]}, "used twice"),
        ({"rules": [{"name": "x", "severity": "P9"}]}, "routing.rules.0.severity"),
        ({"rules": [{"name": "x", "sources": ["nagios"]}]}, "routing.rules.0.sources.0"),
        ({"dedup": {"alertmanager": "labels"}}, "routing.dedup.alertmanager"),
        ({"rules": [{"name": "x", "match": {"a": "b"}, "colour": "red"}]}, "unknown key"),
    ],
)
def test_invalid_routing_names_the_key(routing, message):
    with pytest.raises(PolicyError, match=message):
        policy_from_mapping({"routing": routing})


# ------------------------------------------------------------------- auth


def test_authentication_accepts_bearer_and_signatures_only():
    from pydantic import SecretStr

    token = SecretStr("t0ken")
    body = b'{"a": 1}'
    authenticate({}, body, None)
    authenticate({"authorization": "Bearer t0ken"}, body, token)
    authenticate({"authorization": "bearer t0ken"}, body, token)
    authenticate({"x-signature-256": "sha256=" + sign("t0ken", body)}, body, token)
    authenticate(
        {
            "x-grafana-alerting-signature": sign("t0ken", b"100:" + body),
            "x-grafana-alerting-timestamp": "100",
        },
        body,
        token,
        now=150,
    )
    for headers in (
        {},
        {"authorization": "Bearer t0ken2"},
        {"authorization": "Bearer ünïcode"},
        {"x-signature-256": "sha256=zz"},
        {"x-grafana-alerting-signature": sign("t0ken", body), "x-grafana-alerting-timestamp": "x"},
    ):
        with pytest.raises(WebhookError) as raised:
            authenticate(headers, body, token, now=150)
        assert raised.value.status == 401
        assert "t0ken" not in str(raised.value)
