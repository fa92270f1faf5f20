# position-monitor: one process, state on a volume, metrics and health on :9650.
# Secrets never enter the image: rules.yaml holds "${ENV_VAR}" references only, and the values
# come from the container's environment at run time (deploy/compose.yaml: env_file).
# Pinned to a patch release (and Debian release), dependencies to requirements.lock's versions and
# hashes, so a rebuild is the same image; bump on purpose.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Every dependency at the version and hash requirements.lock pins (`make lock` updates it), then
# the package itself, built by the locked setuptools without reaching for anything else.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock \
    && pip install --no-cache-dir --require-hashes --no-deps --prefix=/install -r requirements.lock
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir --no-deps --no-build-isolation --prefix=/install .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="position-monitor" \
      org.opencontainers.image.description="Watches broker positions, diffs every poll, alerts before a loss grows." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed numeric uid/gid, so file ownership on the volume is stable across rebuilds and hosts.
RUN groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /data /etc/position-monitor \
    && chown monitor:monitor /data
COPY --from=build /install /usr/local
COPY rules.yaml /etc/position-monitor/rules.yaml
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9650
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9650/healthz', timeout=3)"]
# Exec form, so the daemon runs as PID 1 and receives SIGTERM itself (it drains within 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["position-monitor"]
CMD ["run", "--config", "/etc/position-monitor/rules.yaml", "--state", "/data/position-monitor.db", "--listen", "0.0.0.0:9650"]
