# The same install path as `make install` (scripts/install.sh): CPU torch pinned by
# constraints.txt, the bundled all-MiniLM-L6-v2, no hub access needed at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    BOT_HOST=0.0.0.0 BOT_PORT=8000 \
    BOT_CORPUS_DIR=/app/corpus BOT_INDEX_DIR=/app/index BOT_DATA_DIR=/app/data \
    PATH=/opt/venv/bin:$PATH

RUN useradd --create-home --uid 10001 bot
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY scripts/ scripts/
COPY bot/ bot/
RUN bash scripts/install.sh /opt/venv "" && rm -rf /root/.cache/pip
COPY corpus/ corpus/
COPY index/README.md index/README.md
RUN mkdir -p /app/data && chown -R bot:bot /app
USER bot

VOLUME ["/app/corpus", "/app/index", "/app/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
# Build the index at start when it is missing or stale, then serve.
CMD ["sh", "-c", "bot index --if-stale && exec bot serve"]
