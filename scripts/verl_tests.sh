#!/usr/bin/env bash
# Runs the `verl`-marked tests (tests/test_trainers_real.py: verl's own RewardLoopManager +
# AgentLoopManager, v0 streaming with 240 samples on one reward worker and the v1
# TransferQueue path; verl 0.7.0's RewardManagerBase; OpenRLHF's own remote-reward client;
# all against a real HERO server on loopback) in the verl venv, creating it first if needed.
#
#   bash scripts/verl_tests.sh [extra pytest args]
#
# Takes ~1-2.5 minutes on 2 CPU cores (local Ray start-up, a server, ~300 rollouts), plus
# ~3.5 minutes the first time for scripts/verl_env.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VERL_VENV:-$REPO/.venv-verl}"
if ! "$VENV/bin/python" -c "import verl, transfer_queue, openrlhf.utils.agent" >/dev/null 2>&1 \
  || [[ ! -d "$VENV/verl-0.7.0/verl" ]]; then
  VERL_VENV="$VENV" bash "$REPO/scripts/verl_env.sh"
fi

# Local Ray on loopback, no usage stats; no hub downloads (the tests build a tiny model).
export HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false

cd "$REPO"
# PYTHONPATH cleared: the venv's editable installs are this checkout.
exec env PYTHONPATH= "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m verl \
  tests/test_trainers_real.py "$@"
