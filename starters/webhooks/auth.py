"""Webhook authentication: a bearer token, or an HMAC-SHA256 signature of the body.

Accepted, each compared in constant time against the source's secret:

- ``Authorization: Bearer <secret>`` (Alertmanager ``http_config.authorization``,
  Grafana's "Authorization header" settings);
- ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`` (the ``sha256=``
  prefix is optional);
- ``X-Grafana-Alerting-Signature: <hex>`` as Grafana's HMAC signature setting
  sends it; when ``X-Grafana-Alerting-Timestamp`` is present the signed text is
  ``<timestamp>:<body>`` and the timestamp must be within five minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from pydantic import SecretStr

from starters.webhooks.errors import WebhookError

SIGNATURE_HEADER = "x-signature-256"
GRAFANA_SIGNATURE_HEADER = "x-grafana-alerting-signature"
GRAFANA_TIMESTAMP_HEADER = "x-grafana-alerting-timestamp"
MAX_CLOCK_SKEW_SECONDS = 300


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` under ``secret`` (what senders put in the header)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _bearer_ok(headers: Mapping[str, str], secret: str) -> bool:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _same(credentials, secret)


def _signature_ok(headers: Mapping[str, str], secret: str, body: bytes) -> bool:
    given = headers.get(SIGNATURE_HEADER)
    if given is None:
        return False
    given = given.strip()
    given = given[len("sha256=") :] if given.lower().startswith("sha256=") else given
    return _same(given.lower(), sign(secret, body))


def _grafana_ok(headers: Mapping[str, str], secret: str, body: bytes, now: float) -> bool:
    given = headers.get(GRAFANA_SIGNATURE_HEADER)
    if given is None:
        return False
    stamp = headers.get(GRAFANA_TIMESTAMP_HEADER)
    signed = body
    if stamp is not None:
        try:
            fresh = abs(now - float(stamp)) <= MAX_CLOCK_SKEW_SECONDS
        except ValueError:
            return False
        if not fresh:
            return False
        signed = stamp.encode() + b":" + body
    return _same(given.lower(), sign(secret, signed))


def authenticate(
    headers: Mapping[str, str], body: bytes, token: SecretStr | None, *, now: float | None = None
) -> None:
    """Accept the request or raise 401; an endpoint without a token is open.

    Raises:
        WebhookError: 401 when no accepted credential matches.
    """
    if token is None:
        return
    secret = token.get_secret_value()
    clock = time.time() if now is None else now
    if (
        _bearer_ok(headers, secret)
        or _signature_ok(headers, secret, body)
        or _grafana_ok(headers, secret, body, clock)
    ):
        return
    raise WebhookError(
        401,
        "missing or invalid credentials: send 'Authorization: Bearer <token>' "
        f"or an HMAC-SHA256 signature of the body in {SIGNATURE_HEADER}",
        headers={"WWW-Authenticate": 'Bearer realm="incident webhooks"'},
    )
