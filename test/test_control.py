"""Joint handling, limits (params file and URDF) and System 1's planner, without ROS."""

import numpy as np
import pytest

from conftest import JOINTS, hand_made_latents
from video2act_core.checkpoint import load_system1
from video2act_core.control import (
    ChunkPlanner,
    JointGroups,
    JointLimits,
    JointStateSample,
    LatentsSample,
    Mode,
)
from video2act_core.data.joint_names import JointStateError, reorder_joint_state

URDF = """<robot name="so101">
  <joint name="shoulder_pan" type="revolute"><limit lower="-1.9" upper="1.9" velocity="1.5" effort="3"/></joint>
  <joint name="shoulder_lift" type="revolute"><limit lower="-2.0" upper="2.0" velocity="3.0" effort="3"/></joint>
  <joint name="wrist_roll" type="continuous"><limit velocity="4.0" effort="1"/></joint>
  <joint name="camera_mount" type="fixed"/>
</robot>"""


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
        ([*JOINTS, "elbow_flex"], [0.0] * 7, r"names joints \['elbow_flex'\] more than once"),
    ],
)
def test_bad_joint_states_are_refused(names, positions, message):
    with pytest.raises(JointStateError, match=message):
        reorder_joint_state(names, positions, JOINTS)


def test_joint_groups_send_the_gripper_to_its_own_controller():
    groups = JointGroups.split(JOINTS, ["gripper"])
    assert groups.arm == (0, 1, 2, 3, 4) and groups.gripper == (5,)
    assert JointGroups.split(JOINTS, []).arm == tuple(range(6))


def test_limits_from_lists_are_validated():
    with pytest.raises(ValueError, match="one per joint"):
        JointLimits.from_lists(JOINTS[:3], [0.0], [], [])
    with pytest.raises(ValueError, match="exceed"):
        JointLimits.from_lists(JOINTS[:1], [1.0], [0.0], [])
    with pytest.raises(ValueError, match="positive"):
        JointLimits.from_lists(JOINTS[:1], [], [], [0.0])


def test_limits_without_positions_or_velocities_cannot_drive_a_robot():
    assert "no position limits for ['shoulder_pan'" in JointLimits.unknown(JOINTS).missing()
    velocity_only = JointLimits.from_lists(JOINTS, [], [], [1.0] * 6)
    assert "no velocity" not in velocity_only.missing() and "no position limits" in velocity_only.missing()
    assert JointLimits.from_lists(JOINTS, [-1.0] * 6, [1.0] * 6, [1.0] * 6).missing() == ""


def test_urdf_limits_combine_with_the_params_file_as_the_tighter_of_both():
    urdf = JointLimits.from_urdf(URDF, JOINTS)
    np.testing.assert_allclose(urdf.lower[:2], [-1.9, -2.0])
    assert np.isinf(urdf.lower[2]) and urdf.continuous[4] and urdf.max_velocity[4] == 4.0
    params = JointLimits.from_lists(
        JOINTS, [-2.0, -1.8, -0.2, -1.7, -2.8, 0.0], [2.0, 1.8, 2.8, 1.7, 2.8, 1.0], [2.0, 2.0, 2.0, 2.5, 3.0, 3.0]
    )
    both = params.tighter(urdf)
    np.testing.assert_allclose(both.lower, [-1.9, -1.8, -0.2, -1.7, -2.8, 0.0])
    np.testing.assert_allclose(both.upper, [1.9, 1.8, 2.8, 1.7, 2.8, 1.0])
    np.testing.assert_allclose(both.max_velocity, [1.5, 2.0, 2.0, 2.5, 3.0, 3.0])
    # The URDF alone lacks limits for some joints; a continuous joint needs no position limits.
    assert "'elbow_flex'" in urdf.missing() and "'wrist_roll'" not in urdf.missing().split(";")[0]
    with pytest.raises(ValueError, match="no range"):
        JointLimits.from_lists(JOINTS, [1.95] + [-1.0] * 5, [2.0] + [1.0] * 5, []).tighter(urdf)
    with pytest.raises(ValueError, match="not valid URDF"):
        JointLimits.from_urdf("<robot", JOINTS)


@pytest.fixture(scope="module")
def planner(tiny_checkpoint):
    system1 = load_system1(tiny_checkpoint, device="cpu")
    return ChunkPlanner(system1, action_period_s=0.1, max_latents_age_s=1.0, max_joint_state_age_s=0.2)


def latents(planner, **changes):
    width = planner.system1.config.context_dim
    tokens = hand_made_latents(planner.system1, np.zeros((16, width), np.float32), np.zeros((16, width), np.float32))
    sample = LatentsSample(tokens, stamp_ns=10_000_000_000, sequence=1, model_id=planner.system1.model_id)
    for key, value in changes.items():
        setattr(sample, key, value)
    return sample


STATE = JointStateSample(np.zeros(6), stamp_s=10.0)


def test_fresh_inputs_give_a_finite_chunk(planner):
    plan = planner.plan(latents(planner), STATE, now_s=10.1)
    assert plan.mode == Mode.ACTIVE
    assert plan.positions.shape == (planner.system1.config.horizon, 6)
    assert np.all(np.isfinite(plan.positions))


@pytest.mark.parametrize(
    "make_latents, state, reason",
    [
        (lambda p: latents(p), None, "no joint state"),
        (lambda p: latents(p), JointStateSample(np.zeros(6), 9.0), "joint state is 1.10 s old"),
        (lambda p: latents(p), JointStateSample(np.zeros(6), 16.0), "joint state stamped 5.90 s in the future"),
        # A future stamp within tolerance still ages from its receipt.
        (lambda p: latents(p), JointStateSample(np.zeros(6), 10.15, received_s=9.5), "joint state is 0.60 s old"),
        (lambda p: None, STATE, "no latents"),
        (lambda p: latents(p, stamp_ns=8_000_000_000), STATE, "latents are 2.10 s old"),
        (lambda p: latents(p, stamp_ns=20_000_000_000), STATE, "latents stamped 9.90 s in the future"),
        (lambda p: latents(p, model_id="other@v1:0"), STATE, "from model 'other@v1:0'"),
        (
            lambda p: latents(
                p,
                latents=hand_made_latents(
                    p.system1, np.full((16, 128), np.nan, np.float32), np.zeros((16, 128), np.float32)
                ),
            ),
            STATE,
            "NaN",
        ),
        (
            lambda p: latents(
                p, latents=hand_made_latents(p.system1, np.zeros((16, 7), np.float32), np.zeros((16, 7), np.float32))
            ),
            STATE,
            "expected",
        ),
    ],
)
def test_holds_with_a_reason_on_unusable_inputs(planner, make_latents, state, reason):
    plan = planner.plan(make_latents(planner), state, now_s=10.1)
    assert plan.mode == Mode.HOLD
    assert reason in plan.reason
    assert plan.positions is None


def test_more_sampling_steps_than_the_checkpoint_was_trained_with_are_refused_at_start_up(tiny_checkpoint):
    system1 = load_system1(tiny_checkpoint, device="cpu")
    trained = system1.config.num_train_timesteps
    ChunkPlanner(system1, 0.1, 1.0, 0.3, num_inference_steps=trained)
    with pytest.raises(ValueError, match=rf"num_inference_steps {trained + 1} must lie in \[1, {trained}\]"):
        ChunkPlanner(system1, 0.1, 1.0, 0.3, num_inference_steps=trained + 1)
