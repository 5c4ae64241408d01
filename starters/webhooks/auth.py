"""Webhook authentication: a bearer token, or an HMAC-SHA256 signature, with replay protection.

Accepted, each compared in constant time against the source's secret:

- ``Authorization: Bearer <secret>`` (Alertmanager ``http_config.authorization``,
  Grafana's "Authorization header" settings);
- ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, signed)>`` (the ``sha256=``
  prefix is optional), where ``signed`` is ``<timestamp>.<body>`` when
  ``X-Signature-Timestamp: <unix seconds>`` is sent, else the body alone;
- ``X-Grafana-Alerting-Signature: <hex>`` as Grafana's HMAC signature setting
  sends it; with ``X-Grafana-Alerting-Timestamp`` the signed text is
  ``<timestamp>:<body>``.

A signed timestamp must be within five minutes of the service's clock, and
with ``[routing.webhooks] require_signed_timestamp`` a signature without one is
refused. A request with a signed timestamp can be used once: its signature is
remembered (:class:`ReplayCache`) until the timestamp is stale anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from starters.webhooks.errors import WebhookError

SIGNATURE_HEADER = "x-signature-256"
TIMESTAMP_HEADER = "x-signature-timestamp"
GRAFANA_SIGNATURE_HEADER = "x-grafana-alerting-signature"
GRAFANA_TIMESTAMP_HEADER = "x-grafana-alerting-timestamp"
MAX_CLOCK_SKEW_SECONDS = 300
"""How far a signed timestamp may be from the service's clock, either way."""
REPLAY_CACHE_SIZE = 100_000
"""Signatures remembered at most (per process); the oldest are forgotten first."""


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` under ``secret`` (what senders put in the header)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_with_timestamp(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>``: ``X-Signature-256`` with a timestamp."""
    return sign(secret, timestamp.encode() + b"." + body)


def _same(given: str, expected: str) -> bool:
    # Header values arrive decoded as Latin-1: encoding cannot fail, and
    # compare_digest on str would raise TypeError for non-ASCII input.
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode())


class ReplayCache:
    """Signatures of accepted requests, each remembered for the freshness window.

    A signature is *claimed* when its request is authenticated and *released*
    again when the request fails before its alerts were handed over, so a
    sender's retry of a failed request still works while a replay of a
    successful one is refused.
    """

    def __init__(
        self,
        *,
        ttl: float = 2 * MAX_CLOCK_SKEW_SECONDS,
        capacity: int = REPLAY_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def claim(self, signature: str) -> bool:
        """Remember ``signature``; False when it was already claimed within the window."""
        now = self._clock()
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now and len(self._seen) < self._capacity:
                break
            del self._seen[oldest]
        if signature in self._seen:
            return False
        self._seen[signature] = now + self._ttl
        return True

    def release(self, signature: str) -> None:
        """Forget ``signature`` (its request did not complete)."""
        self._seen.pop(signature, None)


@dataclass(frozen=True)
class Credential:
    """What authenticated a request."""

    replay_key: str | None = None
    """The signature to claim in the :class:`ReplayCache` (signed timestamps only)."""


class _Refused(Exception):
    """A credential was presented but is not acceptable; the message says why."""


def _bearer_ok(headers: Mapping[str, str], secret: str) -> bool:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _same(credentials, secret)


def _fresh(stamp: str, now: float, header: str) -> None:
    try:
        if len(stamp) > 20:
            raise ValueError
        value = float(stamp)
    except ValueError:
        raise _Refused(f"{header} is not a Unix time in seconds") from None
    if not abs(now - value) <= MAX_CLOCK_SKEW_SECONDS:
        raise _Refused(f"{header} is more than {MAX_CLOCK_SKEW_SECONDS}s from the server's clock")


def _signature(
    headers: Mapping[str, str], secret: str, body: bytes, now: float, *, require_timestamp: bool
) -> Credential | None:
    given = headers.get(SIGNATURE_HEADER)
    if given is None:
        return None
    given = given.strip()
    given = given[len("sha256=") :] if given.lower().startswith("sha256=") else given
    stamp = headers.get(TIMESTAMP_HEADER)
    if stamp is None:
        if require_timestamp:
            raise _Refused(f"{SIGNATURE_HEADER} must sign a fresh {TIMESTAMP_HEADER}")
        return Credential() if _same(given.lower(), sign(secret, body)) else None
    _fresh(stamp, now, TIMESTAMP_HEADER)
    if not _same(given.lower(), sign_with_timestamp(secret, stamp.strip(), body)):
        return None
    return Credential(replay_key="sig:" + given.lower())


def _grafana(
    headers: Mapping[str, str], secret: str, body: bytes, now: float, *, require_timestamp: bool
) -> Credential | None:
    given = headers.get(GRAFANA_SIGNATURE_HEADER)
    if given is None:
        return None
    stamp = headers.get(GRAFANA_TIMESTAMP_HEADER)
    if stamp is None:
        if require_timestamp:
            raise _Refused(
                f"{GRAFANA_SIGNATURE_HEADER} must sign a fresh {GRAFANA_TIMESTAMP_HEADER}"
            )
        return Credential() if _same(given.lower(), sign(secret, body)) else None
    _fresh(stamp, now, GRAFANA_TIMESTAMP_HEADER)
    if not _same(given.lower(), sign(secret, stamp.encode() + b":" + body)):
        return None
    return Credential(replay_key="grafana:" + given.strip().lower())


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    token: SecretStr | None,
    *,
    now: float | None = None,
    require_timestamp: bool = False,
) -> Credential:
    """Accept the request or raise 401; an endpoint without a token is open.

    Returns:
        What authenticated it; its ``replay_key`` must be claimed before the
        request acts.

    Raises:
        WebhookError: 401 when no accepted credential matches, naming a stale or
            missing timestamp when that is the reason.
    """
    if token is None:
        return Credential()
    secret = token.get_secret_value()
    clock = time.time() if now is None else now
    problem = ""
    if _bearer_ok(headers, secret):
        return Credential()
    for check in (_signature, _grafana):
        try:
            credential = check(headers, secret, body, clock, require_timestamp=require_timestamp)
        except _Refused as refused:
            problem = str(refused)
            continue
        if credential is not None:
            return credential
    raise WebhookError(
        401,
        (f"{problem}; " if problem else "")
        + "missing or invalid credentials: send 'Authorization: Bearer <token>' "
        f"or an HMAC-SHA256 signature in {SIGNATURE_HEADER}",
        headers={"WWW-Authenticate": 'Bearer realm="incident webhooks"'},
    )
