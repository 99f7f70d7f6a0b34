# CPU image of the HERO reward service (default). For a CUDA image pass
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 --build-arg BASE=nvidia/cuda:12.8.0-runtime-ubuntu24.04
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    HERO_HOST=0.0.0.0 HERO_PORT=8000 HERO_STATE_PATH=/data/hero-state.sqlite3
RUN useradd --create-home --uid 10001 hero && mkdir /data && chown hero /data
WORKDIR /app
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY client/ client/
RUN pip install --no-cache-dir ./client
COPY pyproject.toml README.md ./
COPY service/ service/
RUN pip install --no-cache-dir '.[redis]'
USER hero
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status!=200)"
CMD ["hero", "serve"]
