# The restate-stream worker: the project installed with pip plus the example apps, serving the
# app that the mounted /app/bindings.yaml names, over h2c (Restate dials prior-knowledge HTTP/2).
# Build from the repository root:  docker build -f deploy/worker.Dockerfile -t restate-stream-worker:0.1.0 .
# PYTHON_IMAGE: any Python 3.11+ image with pip; scripts/docker-engine build passes a local
# Debian base (no registry reachable there).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# What the wheel build reads: the readme is package metadata, the pom is force-included.
COPY pyproject.toml README.md ./
COPY deploy/kafka/pom.xml deploy/kafka/pom.xml
COPY restate_stream restate_stream
COPY connectors connectors
RUN pip install ".[avro]" && rm -rf /src

# The example apps are not in the wheel: bindings name them as importable modules.
WORKDIR /app
COPY examples examples
ENV PYTHONPATH=/app

RUN useradd --system --uid 10001 --no-create-home worker
USER 10001
EXPOSE 9080
# Off loopback the worker refuses to start unless the bindings give worker.identity_keys (or
# --insecure is passed, as deploy/docker-compose.yml does for its unpublished port).
CMD ["restate-stream", "worker", "-f", "/app/bindings.yaml", "--host", "0.0.0.0"]
