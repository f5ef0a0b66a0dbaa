# syntax=docker/dockerfile:1.7
# Worker image: the science stack with CUDA torch. The same image serves the gpu and the cpu queue
# (GENAUDIT_DEVICE=cuda|cpu). PyPI's Linux torch wheels bring their own CUDA user-space libraries, so the
# base only needs what the NVIDIA container toolkit expects (driver capabilities, compat libraries).
# Build from the repository root:  docker build -f deploy/worker.Dockerfile -t genaudit-worker .
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Another torch build (e.g. a different CUDA) can come from an extra index:
#   --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG PIP_EXTRA_INDEX_URL=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install '.[worker]'

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libgomp1 \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    GENAUDIT_WORKER_METRICS_PORT=9101 \
    GENAUDIT_WEIGHTS_DIR=/var/lib/genaudit/weights \
    PROMETHEUS_MULTIPROC_DIR=/tmp/genaudit-prom
RUN groupadd --system --gid 10001 genaudit \
 && useradd --system --uid 10001 --gid genaudit --home-dir /home/genaudit --create-home genaudit \
 && mkdir -p /var/lib/genaudit/weights /tmp/genaudit-prom \
 && chown -R genaudit:genaudit /var/lib/genaudit /tmp/genaudit-prom
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/genaudit
EXPOSE 9101
# Liveness = the worker's /metrics answers (served by the main worker process). `celery inspect ping`
# would import the whole app and round-trip through the broker on every probe: too heavy for a probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('GENAUDIT_WORKER_METRICS_PORT', '9101'), timeout=4)"]
ENTRYPOINT ["genaudit"]
CMD ["worker", "--queues", "gpu"]
