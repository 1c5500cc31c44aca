# syntax=docker/dockerfile:1
# Lifelong: the production image. Build from the repository root:
#   docker build -t lifelong:dev .
#   docker run --rm -p 127.0.0.1:50051:50051 -p 127.0.0.1:9100:9100 lifelong:dev serve --demo \
#       --grpc-insecure --auth-disabled
# (gRPC beyond loopback needs TLS and tokens, or those two flags: docs/security.md)
# See docs/deploy.md.

# Both stages must use the same Python: the virtual environment copied from the build stage
# points at the interpreter of the base image. Pin a digest for reproducible builds
# (python:3.11-slim@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# build: a virtual environment with CPU-only torch, the client (stubs) and the server.
FROM ${PYTHON_IMAGE} AS build

# CPU wheels only: the CUDA build from PyPI is ~10x larger and useless here. Keep in step with
# the torch the tests run (pyproject.toml says torch>=2.4).
ARG TORCH_VERSION=2.15.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# A C compiler, for this stage only: it compiles the learner's kernel below; the runtime stage has
# none. Versions come with the base image's Debian.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/lifelong
ENV PATH=/opt/lifelong/bin:$PATH

# torch first, alone, from PyTorch's CPU index (its own layer: it changes least and is largest).
# The constraint file then pins it, so resolving the service's dependencies from PyPI can never
# swap in the CUDA build.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && pip freeze | grep -i '^torch==' > /tmp/constraints.txt

# The client distribution first (the server depends on lifelong-client), then the server.
COPY clients/python /src/clients/python
COPY pyproject.toml README.md /src/
COPY service /src/service
RUN pip install --no-cache-dir --constraint /tmp/constraints.txt /src/clients/python /src \
    && lifelong --version \
    && python -c "import lifelong.v1.lifelong_pb2, grpc_health.v1.health_pb2, torch"

# The learner's fused kernel (lifelong/model/fast/kernel.c), built ahead of time for the
# architecture's levels (x86-64-v2, v3, v4: the learner loads the best its CPU runs), not for this
# build machine's CPU. It lands inside the virtual environment: the runtime stage gets it with the
# rest, read-only.
RUN LIFELONG_KERNEL_CACHE=/opt/lifelong/kernel python -m lifelong.model.fast.build

# ---------------------------------------------------------------------------------------------
# runtime: the virtual environment, a non-root user, a volume for checkpoints.
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="lifelong" \
      org.opencontainers.image.description="gRPC predictions from a network that never stops learning" \
      org.opencontainers.image.licenses="Apache-2.0"

# OPENBLAS_NUM_THREADS: one BLAS thread, as `lifelong` sets unless given (lifelong/cli.py): a
# prediction batch is a few small matrix products, several times slower on OpenBLAS's pool;
# here it also covers `python -c` (the HEALTHCHECK) and anything else run in the image.
ENV PATH=/opt/lifelong/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LIFELONG_CHECKPOINT_DIR=/var/lib/lifelong \
    LIFELONG_KERNEL_CACHE=/opt/lifelong/kernel \
    LIFELONG_GRPC_ADDRESS=[::]:50051 \
    LIFELONG_METRICS_PORT=9100 \
    LIFELONG_LOG_FORMAT=json \
    OPENBLAS_NUM_THREADS=1

# A fixed numeric uid/gid so Kubernetes can check runAsNonRoot and volumes can be chowned to it.
RUN groupadd --system --gid 10001 lifelong \
    && useradd --system --uid 10001 --gid lifelong --home-dir /var/lib/lifelong \
        --no-create-home --shell /usr/sbin/nologin lifelong \
    && mkdir -p /var/lib/lifelong \
    && chown lifelong:lifelong /var/lib/lifelong

# The virtual environment, with the kernel the build stage compiled in /opt/lifelong/kernel
# (LIFELONG_KERNEL_CACHE): no compiler here, so the learner loads that one and writes nothing.
COPY --from=build /opt/lifelong /opt/lifelong

USER 10001:10001
WORKDIR /var/lib/lifelong
VOLUME ["/var/lib/lifelong"]

# gRPC (Predict*, Learn*, health, reflection) and Prometheus /metrics.
EXPOSE 50051 9100

# The standard gRPC health service (grpc.health.v1), overall status, on the port of
# LIFELONG_GRPC_HEALTH_ADDRESS if set (the plaintext health-only port a TLS server needs for
# this check), else of LIFELONG_GRPC_ADDRESS. Exit 0 only when SERVING.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = (os.environ.get('LIFELONG_GRPC_HEALTH_ADDRESS') or os.environ.get('LIFELONG_GRPC_ADDRESS', ':50051')).rsplit(':', 1)[1]; channel = grpc.insecure_channel('localhost:' + port); status = g.HealthStub(channel).Check(h.HealthCheckRequest(), timeout=4).status; sys.exit(0 if status == h.HealthCheckResponse.SERVING else 1)"]

ENTRYPOINT ["lifelong"]
CMD ["serve"]
