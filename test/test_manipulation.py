"""The MuJoCo manipulation tasks: push, pick-and-place and stack. Their
scripted experts succeed through the episode loop and record bags, success
needs what each task asks (a carried block, released at rest), and the
top-down kinematics hold the gripper vertical where blocks are drawn."""

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE, episode_topics
from video2act_core.camera_pose import CameraPose
from video2act_core.data.rosbag import EpisodeRecorder, read_episode
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_sim import manipulation
from video2act_sim.episode import run_episode
from video2act_sim.expert import ScriptedReacher

pytestmark = pytest.mark.sim

POLICY = node_params(PolicyParams, PARAMS_FILE, "video2act_policy")
HIDDEN_GEOM_GROUP = 5  # MuJoCo renders geom groups 0-2 by default


def sim(task: str) -> SimArmParams:
    return node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm", {"backend": "mujoco_so101", "task": task})


def expert() -> ScriptedReacher:
    return ScriptedReacher(
        16, POLICY.action_period_s, 0.8 * np.asarray(POLICY.max_joint_velocity), manipulation.EXPERT_TIME_CONSTANT_S
    )


@pytest.fixture(scope="module")
def mujoco_arm_class():
    from video2act_sim.mujoco_arm import MujocoArm

    arm = MujocoArm(len(JOINTS), seed=0, task="push")
    try:
        arm.render(32, 32)
    except Exception as error:  # no EGL/OSMesa on this machine
        pytest.skip(f"no offscreen OpenGL for MuJoCo ({error}); install libegl1 or set MUJOCO_GL=osmesa")
    finally:
        arm.close()
    return MujocoArm


@pytest.mark.parametrize("task", manipulation.MANIPULATION_TASKS)
def test_the_expert_succeeds_and_records_a_bag(task, mujoco_arm_class, tmp_path):
    # The experts succeed on 88-98% of seeds (47/50 pick-and-place, 44/50
    # stack, 49/50 push when recorded for the benchmark).
    results = [run_episode(expert(), seed, sim(task), POLICY.action_period_s, num_frames=2) for seed in (1001, 1002)]
    with EpisodeRecorder(tmp_path / "bag", episode_topics(), JOINTS) as recorder:
        results.append(run_episode(expert(), 1000, sim(task), POLICY.action_period_s, num_frames=2, recorder=recorder))
    print(
        f"{task}: expert final distances {[round(r.final_distance, 3) for r in results]}, "
        f"durations {[round(r.duration_s, 1) for r in results]} s"
    )
    assert sum(r.success for r in results) >= 2, [r.final_distance for r in results]
    episode = read_episode(tmp_path / "bag", episode_topics(), JOINTS)
    assert episode.success == results[-1].success
    # The recorded commands shut the jaw (a pushing finger), or open and shut it.
    gripper = episode.commands[:, JOINTS.index("gripper")]
    assert gripper.min() < 0.1 if task == "push" else np.ptp(gripper) > 0.5, gripper


def test_an_arm_that_does_nothing_fails_every_task(mujoco_arm_class):
    for task in manipulation.MANIPULATION_TASKS:
        arm = mujoco_arm_class(len(JOINTS), seed=3, task=task)
        try:
            start = arm.distance()
            arm.step(2.0)
            assert not arm.success() and arm.distance() == pytest.approx(start, abs=2e-3)
            assert start >= manipulation.MIN_SEPARATION - 0.01
        finally:
            arm.close()


def test_placing_needs_a_carried_block_released_at_rest():
    goal = np.array([0.2, 0.0, manipulation.BLOCK_HALF])
    resting = manipulation.BlockState(goal + [0.005, 0.0, 0.0], speed=0.0)
    carried = manipulation.Carried(manipulation.BLOCK_HALF)
    assert not manipulation.placed(resting, goal, manipulation.GOAL_RADIUS, 1.0, carried)  # pushed there
    carried.update(manipulation.BlockState(goal + [0.0, 0.0, manipulation.MIN_CARRY_RISE + 0.001], 0.1))
    assert manipulation.placed(resting, goal, manipulation.GOAL_RADIUS, 1.0, carried)
    assert not manipulation.placed(resting, goal, manipulation.GOAL_RADIUS, 0.2, carried)  # still held
    moving = manipulation.BlockState(resting.position, speed=0.05)
    assert not manipulation.placed(moving, goal, manipulation.GOAL_RADIUS, 1.0, carried)
    far = manipulation.BlockState(goal + [manipulation.GOAL_RADIUS + 0.001, 0.0, 0.0], 0.0)
    assert not manipulation.placed(far, goal, manipulation.GOAL_RADIUS, 1.0, carried)


def test_layouts_keep_block_goal_and_distractor_apart_and_reachable():
    rng = np.random.default_rng(0)
    for push in (False, True):
        for _ in range(200):
            layout = manipulation.draw_layout(rng, push)
            assert np.linalg.norm(layout.goal - layout.block) >= manipulation.MIN_SEPARATION
            assert manipulation.reachable(layout.block) and manipulation.reachable(layout.goal)
            for point in (layout.block, layout.goal):
                assert np.linalg.norm(layout.distractor - point) >= manipulation.DISTRACTOR_CLEARANCE


def test_top_down_kinematics_hold_the_gripper_vertical_over_the_workspace(mujoco_arm_class):
    import mujoco

    arm = mujoco_arm_class(len(JOINTS), seed=0, task="pick_place")
    try:
        for x, y, z in [(0.15, -0.1, 0.015), (0.2, 0.0, 0.06), (0.24, 0.0, 0.075), (0.2, 0.1, 0.015)]:
            joints = arm._inverse_kinematics(np.array([x, y, z]), np.array([0.0, 1.0, 0.0]), arm._pad_offset)
            # Back out the gravity sag the setpoint includes: where the joints rest under the servos.
            scratch = mujoco.MjData(arm.model)
            scratch.qpos[arm.joint_qpos] = joints
            mujoco.mj_forward(arm.model, scratch)
            scratch.qpos[arm.joint_qpos] -= scratch.qfrc_bias[arm.joint_dof] / arm.model.actuator_gainprm[:, 0]
            mujoco.mj_kinematics(arm.model, scratch)
            frame = scratch.site("gripperframe")
            rotation = frame.xmat.reshape(3, 3)
            pads = frame.xpos + rotation @ arm._pad_offset
            assert np.linalg.norm(pads - [x, y, z]) < 0.002, (x, y, z, pads)
            assert rotation[:, 0] @ [0.0, 0.0, -1.0] > np.cos(np.radians(2.0))  # pointing down
            assert abs(rotation[:, 2] @ [1.0, 0.0, 0.0]) < np.sin(np.radians(2.0))  # jaws close along y
            assert np.all(joints[:5] >= arm.servos.limits.lower[:5] - 1e-9)
    finally:
        arm.close()


def test_the_scene_camera_shows_the_block_large_and_where_its_pose_says(mujoco_arm_class):
    """The manipulation tasks' camera frames the workspace: the block covers
    150-200 of its 96x96 pixels (in the scene's front camera 50-60), and the
    camera pose the bags record projects the block's centre onto them."""
    from video2act_sim.mujoco_arm import WORKSPACE_CAMERA_FOVY

    size = 96
    for seed in (0, 1, 2):
        arm = mujoco_arm_class(len(JOINTS), seed=seed, task="pick_place")
        try:
            with_block = arm.render(size, size).astype(int)
            block = arm.block()
            # Hidden in a geom group the renderer leaves out (moving it would move a light aimed at it).
            arm.model.geom_group[arm.model.geom("block").id] = HIDDEN_GEOM_GROUP
            rows, columns = np.nonzero(np.abs(arm.render(size, size).astype(int) - with_block).max(axis=2) > 20)
            # The base is the world's origin in the SO-101 scene: base and world coordinates agree.
            optical = (
                arm.camera_pose("base_link", "camera")
                .inverse()
                .then(CameraPose("camera", "block", tuple(block), (0.0, 0.0, 0.0, 1.0)))
                .translation
            )
        finally:
            arm.close()
        focal = size / 2 / np.tan(np.radians(WORKSPACE_CAMERA_FOVY) / 2)
        projected = np.array([size / 2 + focal * optical[1] / optical[2], size / 2 + focal * optical[0] / optical[2]])
        print(
            f"seed {seed}: block on {len(rows)} pixels around {rows.mean():.1f}, {columns.mean():.1f}; "
            f"projected at {projected.round(1)}"
        )
        assert len(rows) >= 120
        assert np.hypot(rows.mean() - projected[0], columns.mean() - projected[1]) < 3.0


def test_the_kinematic_arm_refuses_manipulation_tasks():
    from video2act_sim.arms import make_arm

    for task in manipulation.MANIPULATION_TASKS:
        with pytest.raises(ValueError, match=f"unknown task '{task}' for the kinematic arm"):
            make_arm("kinematic", 6, 0, task=task)
