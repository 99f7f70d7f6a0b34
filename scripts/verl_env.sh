#!/usr/bin/env bash
# Creates a separate virtualenv with verl (CPU torch, local Ray, TransferQueue for the v1
# path) and OpenRLHF's wheel (no deps) plus this repo's packages, for the `verl`-marked
# tests (scripts/verl_tests.sh): verl's own RewardLoopManager / AgentLoopManager and
# OpenRLHF's own remote-reward client against a real HERO server.
#
#   bash scripts/verl_env.sh            # creates/updates $VERL_VENV (default: <repo>/.venv-verl)
#   VERL_VENV=/work/venv-verl bash scripts/verl_env.sh
#
# verl installs on a CPU-only machine: CPU torch first (so verl's deps do not pull a CUDA
# build), then verl and its Ray. vLLM is not needed: the tests replace the LLM server.
# Measured: 3.3 min from scratch with a warm pip cache (2 cores); re-running is quick.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VERL_VENV:-$REPO/.venv-verl}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
# The versions the tests were run with (docs/integrations.md, "How the adapters are tested").
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VERL_SPEC="${VERL_SPEC:-verl==0.9.1}"
TQ_SPEC="${TQ_SPEC:-transferqueue==0.1.11}"
OPENRLHF_SPEC="${OPENRLHF_SPEC:-openrlhf==0.11.2}"
# verl's own dependencies that matter here, at the versions the tests ran with
VERL_DEPS="${VERL_DEPS:-ray==2.60.0 transformers==5.10.4 tensordict==0.10.0}"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[verl_env] creating venv $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip

echo "[verl_env] installing $TORCH_SPEC (CPU), then $VERL_SPEC, $TQ_SPEC, $VERL_DEPS"
"$VPY" -m pip install -q "$TORCH_SPEC"
# shellcheck disable=SC2086
"$VPY" -m pip install -q "$VERL_SPEC" "$TQ_SPEC" $VERL_DEPS cachetools uvicorn fastapi
# OpenRLHF's own code only (its deps are vLLM, DeepSpeed, flash-attn: GPU-only); the tests
# import the modules that need nothing beyond verl's environment.
"$VPY" -m pip install -q --no-deps "$OPENRLHF_SPEC"
# That wheel also ships a top-level `tests` package, which would shadow this repo's tests/.
rm -rf "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tests"
# verl 0.7.0's files alone, beside the newest verl (not on the path): the test of its
# RewardManagerBase(config, tokenizer) puts them first on PYTHONPATH in a subprocess.
VERL070_SPEC="${VERL070_SPEC:-verl==0.7.0}"
rm -rf "$VENV/verl-0.7.0"
"$VPY" -m pip install -q --no-deps --target "$VENV/verl-0.7.0" "$VERL070_SPEC"

echo "[verl_env] installing hero-client and hero-service (editable, no deps; pip's warnings"
echo "           that hero-service wants other transformers/fastapi pins are expected)"
"$VPY" -m pip install -q --no-deps -e "$REPO/client" -e "$REPO"
# Our runtime + dev requirements that verl did not already bring, at our pins; packages verl
# installed keep its versions (the server only needs its API surface).
MISSING="$("$VPY" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
proj = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = list(proj["dependencies"]) + proj.get("optional-dependencies", {}).get("dev", [])
out = []
for r in map(Requirement, reqs):
    if r.name.startswith("hero-") or r.name in ("schemathesis", "kubernetes-validate", "mypy", "ruff"):
        continue
    try:
        version(r.name)
    except PackageNotFoundError:
        out.append(str(r))
print(" ".join(out))
PY
)"
if [[ -n "$MISSING" ]]; then
  echo "[verl_env] installing: $MISSING"
  "$VPY" -m pip freeze --exclude-editable >"$VENV/verl-constraints.txt"
  # shellcheck disable=SC2086
  "$VPY" -m pip install -q -c "$VENV/verl-constraints.txt" $MISSING
fi

"$VPY" - <<'PY'
import ray, torch, transfer_queue, verl
from verl.experimental.agent_loop import AgentLoopManager  # noqa: F401
from verl.experimental.reward_loop import RewardLoopManager  # noqa: F401
import openrlhf.utils.agent  # noqa: F401
import hero_service, hero_client  # noqa: F401
print(f"[verl_env] ok: verl {verl.__version__}, ray {ray.__version__}, torch {torch.__version__}")
PY
echo "[verl_env] venv ready: $VENV"
