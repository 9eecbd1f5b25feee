"""System 1 control step and its safety envelope, without ROS."""

import numpy as np
import pytest

from conftest import JOINTS
from video2act_core.checkpoint import load_system1
from video2act_core.control import (
    ChunkPlanner,
    JointStateError,
    JointStateSample,
    LatentsSample,
    Mode,
    SafetyLimits,
    reorder_joint_state,
)
from video2act_core.policy import Latents


def test_reorder_picks_our_joints_from_a_larger_state_in_any_order():
    names = ["base_x", *reversed(JOINTS)]
    positions = [9.0, *reversed(range(6))]
    np.testing.assert_array_equal(reorder_joint_state(names, positions, JOINTS), np.arange(6.0))


@pytest.mark.parametrize(
    "names, positions, message",
    [
        (JOINTS[:5], [0.0] * 5, "lacks joints"),
        (JOINTS, [0.0] * 5, "6 joint names but 5 positions"),
        (JOINTS, [0.0, 0.0, float("nan"), 0.0, 0.0, 0.0], "non-finite"),
    ],
)
def test_bad_joint_states_are_refused(names, positions, message):
    with pytest.raises(JointStateError, match=message):
        reorder_joint_state(names, positions, JOINTS)


def test_limits_clamp_position_and_bound_each_step():
    limits = SafetyLimits.from_lists(2, [-1.0, -1.0], [1.0, 1.0], [1.0, 2.0])
    chunk = np.array([[5.0, 0.5], [5.0, 0.5], [-5.0, 0.5]])
    constrained = limits.constrain(chunk, current=np.zeros(2), period_s=0.1)
    np.testing.assert_allclose(constrained, [[0.1, 0.2], [0.2, 0.4], [0.1, 0.5]])


def test_limits_are_validated():
    with pytest.raises(ValueError, match="one per joint"):
        SafetyLimits.from_lists(3, [0.0], [], [])
    with pytest.raises(ValueError, match="exceed"):
        SafetyLimits.from_lists(1, [1.0], [0.0], [])


@pytest.fixture(scope="module")
def planner(tiny_checkpoint):
    system1 = load_system1(tiny_checkpoint, device="cpu")
    limits = SafetyLimits.from_lists(6, [-1.0] * 6, [1.0] * 6, [1.0] * 6)
    return ChunkPlanner(system1, limits, action_period_s=0.1, max_latents_age_s=1.0, max_joint_state_age_s=0.2)


def latents(planner, **changes):
    width = planner.system1.config.context_dim
    tokens = Latents(np.zeros((16, width), np.float32), np.zeros((16, width), np.float32), 0.0)
    sample = LatentsSample(tokens, stamp_ns=10_000_000_000, sequence=1, model_id=planner.system1.model_id)
    for key, value in changes.items():
        setattr(sample, key, value)
    return sample


STATE = JointStateSample(np.zeros(6), stamp_s=10.0)


def test_active_chunk_respects_the_envelope(planner):
    plan = planner.plan(latents(planner), STATE, now_s=10.1)
    assert plan.mode == Mode.ACTIVE
    assert plan.positions.shape == (planner.system1.config.horizon, 6)
    steps = np.diff(np.vstack([STATE.positions, plan.positions]), axis=0)
    assert np.all(np.abs(steps) <= 0.1 + 1e-9)
    assert np.all(np.abs(plan.positions) <= 1.0)


@pytest.mark.parametrize(
    "make_latents, state, reason",
    [
        (lambda p: latents(p), None, "no joint state"),
        (lambda p: latents(p), JointStateSample(np.zeros(6), 9.0), "joint state is 1.10 s old"),
        (lambda p: None, STATE, "no latents"),
        (lambda p: latents(p, stamp_ns=8_000_000_000), STATE, "latents are 2.10 s old"),
        (lambda p: latents(p, model_id="other@v1:0"), STATE, "from model 'other@v1:0'"),
        (lambda p: latents(p, latents=Latents(np.full((16, 128), np.nan, np.float32), np.zeros((16, 128), np.float32), 0.0)),
         STATE, "NaN"),
        (lambda p: latents(p, latents=Latents(np.zeros((16, 7), np.float32), np.zeros((16, 7), np.float32), 0.0)),
         STATE, "expected"),
    ],
)
def test_holds_with_a_reason_on_unusable_inputs(planner, make_latents, state, reason):
    plan = planner.plan(make_latents(planner), state, now_s=10.1)
    assert plan.mode == Mode.HOLD
    assert reason in plan.reason
    assert plan.positions is None
