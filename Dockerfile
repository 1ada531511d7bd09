# syntax=docker/dockerfile:1
# Two stages: build the wheels and install them under /install, then copy that alone into a
# clean runtime image (no compiler, no wheel files, no pip cache in any layer). The
# dependencies are built at the versions of constraints.txt, frozen by `make constraints` from
# the environment that `make test` tested (README "Container").

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt ".[bcrypt]" \
 && pip install --no-cache-dir --no-index --ignore-installed --no-warn-script-location \
      --prefix /install /wheels/*.whl

FROM python:3.12-slim-bookworm
LABEL org.opencontainers.image.title="greenapi-exporter" \
      org.opencontainers.image.description="Prometheus exporter for GREEN-API outgoing messages" \
      org.opencontainers.image.licenses="Apache-2.0"
# One id, 10001, for the user, its group and USER. A bind-mounted config.yaml must be readable
# by it: chmod 600 files of the host's user need `docker run --user "$(id -u):$(id -g)"`.
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/greenapi-exporter --shell /usr/sbin/nologin exporter \
 && install -d -m 0755 -o 10001 -g 10001 /var/lib/greenapi-exporter \
 && install -d -m 0755 /etc/greenapi-exporter
COPY --from=build /install /usr/local
USER 10001:10001
WORKDIR /var/lib/greenapi-exporter
# The exporter bounds glibc's malloc arenas itself (two); a value set here or by `docker run
# -e` wins over its own.
ENV GREENAPI_EXPORTER_CONFIG_FILE=/etc/greenapi-exporter/config.yaml \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2
EXPOSE 9935
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9935/-/healthy', timeout=4).status == 200 else 1)"]
# The exporter handles SIGTERM itself and stops within seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["greenapi-exporter"]
