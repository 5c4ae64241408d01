#!/bin/sh
# Creates the namespace (when missing) and registers every custom search attribute the
# incident orchestrator writes (domain/search_attributes.py; tests/test_compose.py keeps
# this list equal to it). Idempotent. Run by the temporal-namespace service of
# docker-compose.yml once the server is healthy; against another self-hosted cluster:
#
#   TEMPORAL_ADDRESS=host:7233 TEMPORAL_NAMESPACE=incidents deploy/temporal/create-namespace.sh
#
# The temporal CLI reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and its TLS/API-key
# variables from the environment, like the worker does.
set -eu

SEARCH_ATTRIBUTES="
IncidentPhase=Keyword
IncidentSeverity=Keyword
IncidentService=Keyword
IncidentCommander=Keyword
IncidentSlaBreached=Bool
IncidentDetectedAt=Datetime
IncidentAcknowledgedAt=Datetime
IncidentResolvedAt=Datetime
IncidentDeliveryFailed=Bool
ActionIncident=Keyword
ActionOwner=Keyword
ActionStatus=Keyword
ActionDueAt=Int
"

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS to the Temporal frontend (host:port)}"
NAMESPACE=${TEMPORAL_NAMESPACE:-default}
RETENTION=${NAMESPACE_RETENTION:-30d}
ATTEMPTS=${HEALTH_ATTEMPTS:-60}

attempt=1
until temporal operator cluster health >/dev/null 2>&1; do
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "Temporal at $TEMPORAL_ADDRESS is not healthy after $ATTEMPTS attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
  echo "namespace $NAMESPACE created (retention $RETENTION)"
fi

# A namespace created a moment ago can take a few seconds to reach every frontend.
attempt=1
until existing=$(temporal operator search-attribute list --namespace "$NAMESPACE" 2>/dev/null); do
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "cannot list the search attributes of $NAMESPACE" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

for attribute in $SEARCH_ATTRIBUTES; do
  name=${attribute%%=*}
  type=${attribute#*=}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type "$type"
    echo "search attribute $name ($type) registered"
  fi
done
