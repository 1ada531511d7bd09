# syntax=docker/dockerfile:1
# Two stages: build a wheel, then install it alone into a clean runtime image.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[bcrypt]"

FROM python:3.12-slim
LABEL org.opencontainers.image.title="greenapi-exporter" \
      org.opencontainers.image.description="Prometheus exporter for GREEN-API outgoing messages" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /var/lib/greenapi-exporter --create-home exporter \
 && mkdir -p /etc/greenapi-exporter
USER 10001:10001
WORKDIR /var/lib/greenapi-exporter
# Two malloc arenas: poll threads otherwise each keep freed answer memory (see docs/performance.md).
ENV GREENAPI_EXPORTER_CONFIG_FILE=/etc/greenapi-exporter/config.yaml \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2
EXPOSE 9935
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9935/-/healthy', timeout=4).status == 200 else 1)"]
# The exporter handles SIGTERM itself and stops within seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["greenapi-exporter"]
