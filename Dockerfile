# position-monitor: one process, state on a volume, metrics on :9650.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /data /etc/position-monitor \
    && chown monitor /data
COPY --from=build /install /usr/local
COPY rules.yaml /etc/position-monitor/rules.yaml
USER monitor
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9650
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9650/healthz', timeout=3)"]
# Exec form, so the daemon runs as PID 1 and receives SIGTERM itself.
ENTRYPOINT ["position-monitor"]
CMD ["run", "--config", "/etc/position-monitor/rules.yaml", "--state", "/data/position-monitor.db", "--listen", "0.0.0.0:9650"]
