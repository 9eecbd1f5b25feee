#!/usr/bin/env bash
# Reproduces checkpoints/sim_demo (and, with --ablations, the variants of
# the ablation table): records scripted-expert demonstrations on the
# simulated arm as rosbag2 (mcap), then trains on them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
source scripts/env.sh
data=data/sim_demos
episodes="${EPISODES:-300}"
steps="${STEPS:-9000}"
# The ablation table compares the branches at one (shorter) training budget.
ablation_steps="${ABLATION_STEPS:-3000}"
[ -d "$data" ] || python -m video2act_sim.expert --out "$data" --episodes "$episodes"
train() { python -m video2act_core.train --data "$data" --sample-every 3 --cache-dir data/feature_cache --overwrite "$@"; }
train --out checkpoints/sim_demo --name sim_demo --steps "$steps"
if [ "${1:-}" = "--ablations" ]; then
  train --out runs/ablations/full --name sim_full --steps "$ablation_steps"
  train --out runs/ablations/no_motion --name sim_no_motion --steps "$ablation_steps" --no-motion
  train --out runs/ablations/no_spatial --name sim_no_spatial --steps "$ablation_steps" --no-spatial
fi
