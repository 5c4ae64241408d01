"""Monitoring webhooks: Alertmanager, Grafana, PagerDuty Events v2 and generic JSON alerts.

Every alert is authenticated, validated, routed by the policy's ``[routing]``
rules and handed to its :class:`~workflows.alert_group.AlertGroupWorkflow`,
which opens or joins the incident. See :func:`starters.http_app.create_app`.
"""

from starters.webhooks.config import WebhookSettings
from starters.webhooks.gateway import TemporalGateway, Unavailable
from starters.webhooks.routes import payload_schemas, webhook_router
from starters.webhooks.service import WebhookService

__all__ = [
    "TemporalGateway",
    "Unavailable",
    "WebhookService",
    "WebhookSettings",
    "payload_schemas",
    "webhook_router",
]
