# syntax=docker/dockerfile:1
#
# Quanticity application image, two stages on python:3.11-slim.
#
#   builder  installs the compiled, hash-pinned runtime requirements
#            (requirements/app.txt, see requirements/README.md) under /install.
#   final    copies /install, installs the package itself without dependencies and
#            runs it as an unprivileged user. No compiler, no dev extras.
#
# Build: docker build -t quanticity:local .     (docker-compose.yml does this for `app`)

FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A compiler, in this stage only: faust-streaming publishes x86_64 wheels but only an
# sdist for arm64, so it is built from source there. Everything else comes as wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY requirements/app.txt requirements/app.txt
# --require-hashes: every file must match a hash in app.txt; --no-deps: the file is the
# complete closure, nothing unpinned may slip in.
RUN pip install --prefix=/install --require-hashes --no-deps -r requirements/app.txt


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 10001 quanticity \
    && useradd --system --uid 10001 --gid quanticity --home-dir /app --shell /usr/sbin/nologin quanticity

COPY --from=builder /install /usr/local

# The package only: its dependencies are already in place from the builder stage.
# `pip check` fails the build if app.txt no longer covers what pyproject.toml asks for.
WORKDIR /tmp/quanticity-src
# README.md* (a wildcard) rather than README.md: pyproject.toml names the README, and
# a wildcard that matches nothing does not fail a COPY whose other sources exist.
COPY pyproject.toml README.md* ./
COPY quanticity ./quanticity
RUN pip install --no-deps . \
    && pip check \
    && cd / && rm -rf /tmp/quanticity-src

# /app holds config/ (mounted read-only by compose) and the writable .quanticity/ state.
WORKDIR /app
RUN chown quanticity:quanticity /app
USER quanticity

EXPOSE 9100

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=3)"]

ENTRYPOINT ["quanticity"]
CMD ["up"]
