# syntax=docker/dockerfile:1.7
# Gateway (and beat) image: the base install only, no torch.
# Build from the repository root:  docker build -f deploy/gateway.Dockerfile -t genaudit-gateway .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
# The base install is exactly what the gateway needs; '.[worker]' (torch) must never land here.
RUN pip install . \
 && python -c "import importlib.util as u, sys; sys.exit('torch leaked into the gateway image' if u.find_spec('torch') else 0)"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GENAUDIT_GRPC_PORT=50051 \
    GENAUDIT_METRICS_PORT=9100
RUN groupadd --system --gid 10001 genaudit \
 && useradd --system --uid 10001 --gid genaudit --home-dir /home/genaudit --create-home genaudit
COPY --from=build /opt/venv /opt/venv
COPY deploy/grpc_healthcheck.py /usr/local/bin/genaudit-grpc-healthcheck
USER 10001:10001
WORKDIR /home/genaudit
EXPOSE 50051 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "/usr/local/bin/genaudit-grpc-healthcheck"]
ENTRYPOINT ["genaudit"]
CMD ["serve"]
