# Rosetta gateway image: build a virtualenv in one stage, copy it into a clean slim one.
#   docker build -t rosetta .
#   docker run -p 8080:8080 -v $PWD/config.yaml:/etc/rosetta/config.yaml:ro -e LUNARY_KEY=... rosetta
# Without a mounted config the gateway runs its embedded default (open access, events
# appended to /var/lib/rosetta/events.jsonl). Secrets belong in the environment and are
# read through ${VAR} references in the config.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/rosetta
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY mappings ./mappings
RUN /opt/rosetta/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/rosetta/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ROSETTA_EVENTS=/var/lib/rosetta/events.jsonl
RUN groupadd --system --gid 10001 rosetta \
    && useradd --system --uid 10001 --gid rosetta --home-dir /var/lib/rosetta --create-home rosetta \
    && mkdir -p /etc/rosetta
COPY --from=build /opt/rosetta /opt/rosetta
USER 10001:10001
WORKDIR /var/lib/rosetta
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "if [ -f /etc/rosetta/config.yaml ]; then exec rosetta serve --host 0.0.0.0 --port 8080 --config /etc/rosetta/config.yaml; else exec rosetta serve --host 0.0.0.0 --port 8080; fi"]
