# The operator's image: `thrifty run` on a slim Python 3.11, as a non-root user, with the policies
# of policies/ under /opt/thrifty/policies. Only the runtime dependencies (requirements/image.lock):
# no ray, torch, gymnasium or matplotlib; the operator serves policies in numpy, and the `sim`,
# `bench` and `train` extras are never installed here.
#
#   docker build -t REGISTRY/thrifty:0.1.0 .
#
# The base is pinned by tag and digest, so a rebuild gets the same Python and Debian packages;
# to move it, take the new digest from `docker buildx imagetools inspect python:3.11.x-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# Build stage: pip, its caches and the source tree stay here; only the virtual environment and
# the policies move on.
FROM ${PYTHON_IMAGE} AS build
# pip runs as root here on purpose (it writes only /opt/venv): no warning about it, nor about
# its own version.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# .dockerignore lets in only what the package and the policies need.
COPY . .
# The base image's pip installs into a venv that has none: pip and setuptools stay out of the
# image. The dependencies come from the lock, every file checked against its hash, so two builds
# of one commit install the same bytes; the package itself then goes in without resolving
# anything. policies/ may hold no policy yet (git keeps no empty directory): create it so the COPY
# below always has a source, and the operator falls back to its heuristic, loudly, until one ships.
# tests/cluster/test_install.py runs this very command to build the environment it tests.
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes -r /src/requirements/image.lock \
    && pip --python /opt/venv/bin/python install --no-cache-dir --no-deps /src \
    && mkdir -p /src/policies

FROM ${PYTHON_IMAGE}
# No .pyc writes on the read-only root filesystem (manifests/deployment.yaml); logs unbuffered so
# that `kubectl logs` shows them as they happen. One BLAS thread: the policy's matrices are small
# (1000 nodes x 64 units), and threads spinning up per product cost more than they save, as well
# as CPU beyond the Deployment's limit (`make perf` measures placement latency this way).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/policies /opt/thrifty/policies
# A numeric UID, so that the kubelet can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 65532 thrifty \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin thrifty
USER 65532:65532
WORKDIR /opt/thrifty
EXPOSE 8000 8080
ENTRYPOINT ["thrifty", "run"]
