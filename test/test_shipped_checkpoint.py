"""The checkpoint the README's run command uses acts sensibly: a short
closed-loop evaluation on the simulated arm, in sim time, through the same
ChunkPlanner (safety envelope included) as the policy node."""

import numpy as np
import pytest

from conftest import PARAMS_FILE
from video2act_core.checkpoint import read_manifest
from video2act_core.params import CommonParams, PolicyParams, SimArmParams, node_params
from video2act_core.ros import resolve_resource
from video2act_eval.evaluate import evaluate, node_update_ratio
from video2act_sim.arm import HardwareLimits
from video2act_sim.arms import make_arm

pytestmark = pytest.mark.sim

COMMON = node_params(CommonParams, PARAMS_FILE, "/**")
SHIPPED = resolve_resource(COMMON.checkpoint_path)  # as installed, where the nodes look


def test_shipped_checkpoint_is_trained_for_the_configured_arm():
    manifest = read_manifest(SHIPPED)  # verifies every weight file's sha256
    assert manifest.metadata["trained"] is True
    assert manifest.stats.joint_names == COMMON.joint_names


def test_shipped_checkpoint_moves_the_gripper_towards_the_target():
    sim = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm")
    params = node_params(PolicyParams, PARAMS_FILE, "video2act_policy")
    # Evaluation seeds (from 0) are disjoint from the demonstrations' (from 1000).
    seeds = list(range(8))
    start = np.mean(
        [
            make_arm(sim.backend, len(sim.joint_names), seed, HardwareLimits.from_params(sim)).distance()
            for seed in seeds
        ]
    )
    # System 1 at its rate, System 2 at perception's, as the nodes run.
    row = evaluate(SHIPPED, "full", node_update_ratio(params, PARAMS_FILE), False, seeds, sim, params, [])
    print(row, f"mean start distance {start:.3f}")
    # Success on 8 seeds is too coarse to hold it to; the distance is not.
    # Measured with the image-token checkpoint: 0.109 of 0.461 (2 of 8
    # succeeded; timing moves it); the two-stream one without image tokens
    # stopped at 0.247-0.278, docs/evaluation.md's results say why.
    assert row.mean_final_distance < 0.4 * start, row
