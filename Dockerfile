# OllamaStack app image. Build context: see .dockerignore (only what is copied below gets in).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    OLLAMASTACK_DATA_DIR=/data

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin ollamastack \
    && mkdir -p /data \
    && chown ollamastack:ollamastack /data

WORKDIR /app

# Dependencies first, in their own layer: editing the app does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY app.py ./
COPY ollamastack/ ./ollamastack/

USER ollamastack
# A named volume mounted here starts as a copy of this directory, owned by the user above.
VOLUME ["/data"]
EXPOSE 7860

# /healthz answers within 2 s without the Gradio queue, 200 while this process serves (its
# JSON says whether Ollama and the database are up); slim images have no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GRADIO_SERVER_PORT', '7860') + '/healthz', timeout=4)"]

CMD ["python", "app.py"]
