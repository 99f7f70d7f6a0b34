#!/usr/bin/env bash
# Runs the `vllm`-marked tests in the vLLM venv, creating it first if needed:
# tests/test_rm_vllm.py (hf / in-process vLLM / remote vLLM server parity on a tiny model) and
# tests/test_judge_vllm.py (the judge stage against a vLLM OpenAI server on a tiny generative
# judge: the wire, the logprob parsing, cascade+judge through `hero serve`).
#
#   bash scripts/vllm_tests.sh [extra pytest args]
#
# Takes ~4-8 minutes on 2 CPU cores (mostly three vLLM engine start-ups; the judge file alone
# took 80 s), plus ~10 minutes the first time for scripts/vllm_env.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO/.venv-vllm}"
if ! "$VENV/bin/python" -c "from vllm import LLM" >/dev/null 2>&1; then
  VLLM_VENV="$VENV" bash "$REPO/scripts/vllm_env.sh"
fi

# vLLM's CPU backend: bind OpenMP threads to every core ("auto" keeps one core back),
# and a small KV cache (the test model is tiny).
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-$(($(nproc) - 1))}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1

cd "$REPO"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m vllm tests/test_rm_vllm.py tests/test_judge_vllm.py "$@"
