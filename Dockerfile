# fundtrack: the API server. Migrations run on start (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fundtrack ./fundtrack
COPY importers ./importers
COPY migrations ./migrations
COPY schema ./schema
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 fundtrack
USER fundtrack

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1
CMD ["sh", "-c", "fundtrack db upgrade && fundtrack serve --host 0.0.0.0 --port 8000 --workers ${FUNDTRACK_WORKERS:-2}"]
