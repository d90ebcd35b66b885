# fundtrack: the API server. Migrations run on start (see docker-compose.yml).
# `pip install .` builds and installs the wheel (not the source tree): its package data
# carries the templates, static files (GraphiQL included), data and migrations. CI builds
# the same wheel and serves every page from it (.ci/run). The health check is /healthz,
# which fails when templates, static files or the database do.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fundtrack ./fundtrack
COPY importers ./importers
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 fundtrack \
    && mkdir -p /data /var/lib/fundtrack && chown fundtrack /var/lib/fundtrack \
    && rm -rf /app/fundtrack /app/importers /app/migrations
# Run from another folder than the sources (removed above): only the installed wheel runs.
# /data is where docker-compose.yml mounts the report files.
WORKDIR /var/lib/fundtrack
USER fundtrack

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1
CMD ["sh", "-c", "fundtrack db upgrade && fundtrack serve --host 0.0.0.0 --port 8000 --workers ${FUNDTRACK_WORKERS:-2}"]
