# HERO reward service. One Dockerfile, two variants chosen by build args.
#
# CPU (default: embedded demo scorer; SQLite or Redis job state):
#   docker build -t hero-service:cpu .
#
# CUDA + vLLM (GPU reward models: rm_backend=hf on cuda, or the in-process vllm backend):
#   docker build -t hero-service:cuda \
#     --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#     --build-arg EXTRAS=redis,vllm .
#
# Run: docker run -p 127.0.0.1:8000:8000 hero-service:cpu   (state in the /data volume;
# HERO_STATE_URL=redis://... to share state between replicas; see deploy/).
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=redis,remote
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    HERO_HOST=0.0.0.0 HERO_PORT=8000 HERO_STATE_PATH=/data/hero-state.sqlite3
# CUDA bases (Ubuntu) ship no Python: take the distribution's python3 and a venv.
RUN if ! command -v python3 >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -m venv "$VIRTUAL_ENV" \
 && useradd --create-home --uid 10001 hero && mkdir /data && chown hero /data
WORKDIR /app
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY client/ client/
RUN pip install ./client
COPY pyproject.toml README.md ./
COPY service/ service/
RUN pip install ".[${EXTRAS}]"
USER hero
VOLUME /data
EXPOSE 8000
# SIGTERM: not ready at once, then in-flight work finishes (HERO_SHUTDOWN_* settings);
# give the container at least drain + grace seconds to stop (docker stop -t, k8s grace).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status!=200)"
CMD ["hero", "serve"]
