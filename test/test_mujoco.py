"""The MuJoCo SO-101 backend: physics, offscreen camera, expert, bags."""

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE, episode_topics
from video2act_core.data.rosbag import EpisodeRecorder, read_episode
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_sim.episode import run_episode
from video2act_sim.expert import ScriptedReacher

pytestmark = pytest.mark.sim

SIM = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm", {"backend": "mujoco_so101"})
PERIOD = node_params(PolicyParams, PARAMS_FILE, "video2act_policy").action_period_s


@pytest.fixture(scope="module")
def arm():
    from video2act_sim.mujoco_arm import MujocoArm

    arm = MujocoArm(len(JOINTS), seed=0)
    try:
        arm.render(SIM.image_height, SIM.image_width)
    except Exception as error:  # no EGL/OSMesa on this machine
        pytest.skip(f"no offscreen OpenGL for MuJoCo ({error}); install libegl1 or set MUJOCO_GL=osmesa")
    yield arm
    arm.close()


def test_camera_sees_the_scene(arm):
    frame = arm.render(SIM.image_height, SIM.image_width)
    assert frame.shape == (SIM.image_height, SIM.image_width, 3) and frame.dtype == np.uint8
    assert frame.std() > 10  # not a blank buffer


def test_joints_follow_a_commanded_trajectory(arm):
    from video2act_core.trajectory import Trajectory

    arm.reset()
    goal = arm.state.positions + [0.3, 0.2, -0.2, 0.1, 0.0, 0.0]
    arm.command(Trajectory(0.0, [1.0], [goal]))
    for _ in range(20):
        arm.step(0.1)
    np.testing.assert_allclose(arm.state.positions[:5], goal[:5], atol=0.05)


def test_expert_reaches_the_block_and_records_a_bag(arm, tmp_path):
    expert = ScriptedReacher(horizon=16, action_period_s=PERIOD)
    results = [run_episode(expert, seed, SIM, PERIOD, num_frames=2) for seed in range(3)]
    assert all(r.success for r in results), [r.final_distance for r in results]
    with EpisodeRecorder(tmp_path / "bag", episode_topics(), JOINTS) as recorder:
        run_episode(expert, 5, SIM, PERIOD, num_frames=2, recorder=recorder)
    episode = read_episode(tmp_path / "bag", episode_topics(), JOINTS)
    assert episode.success and episode.images.shape[1:] == (SIM.image_height, SIM.image_width, 3)


def test_tracking_the_moving_block_needs_to_aim_ahead(arm, monkeypatch):
    """The block driven along its arc: the expert aiming where it will be
    stays on it; aiming where it is now falls behind."""
    import video2act_sim.mujoco_arm as mujoco_arm

    track = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm", {"backend": "mujoco_so101", "task": "track"})
    expert = ScriptedReacher(horizon=16, action_period_s=PERIOD)
    leading = [run_episode(expert, seed, track, PERIOD, num_frames=2) for seed in range(3)]
    assert all(r.success for r in leading), [r.final_distance for r in leading]
    monkeypatch.setattr(mujoco_arm, "TRACK_LEAD_S", 0.0)
    lagging = [run_episode(expert, seed, track, PERIOD, num_frames=2) for seed in range(3)]
    assert not any(r.success for r in lagging), [r.final_distance for r in lagging]


def test_each_split_changes_what_the_camera_sees(arm):
    from video2act_sim.arm import SCENES
    from video2act_sim.mujoco_arm import MujocoArm

    def seen(scene: str) -> tuple[np.ndarray, np.ndarray]:
        other = MujocoArm(len(JOINTS), seed=2, scene=scene)
        try:
            return other.target, other.render(SIM.image_height, SIM.image_width).astype(int)
        finally:
            other.close()

    block, original = seen("original")
    for scene in SCENES[1:]:
        other_block, frame = seen(scene)
        np.testing.assert_array_equal(other_block, block)  # the same task
        changed = np.abs(frame - original).max(axis=2) > 8
        # Lighting and the floor change most of the image, the object only itself.
        assert changed.mean() > (0.001 if scene == "object" else 0.3), (scene, changed.mean())


def test_setpoints_make_up_for_the_servos_sag_under_gravity(arm, monkeypatch):
    from video2act_core.trajectory import Trajectory

    arm.reset()
    above = arm.grasp_point() + [0.0, 0.0, 0.05]  # in free space: no contact to hold the gripper up
    monkeypatch.setattr(arm, "grasp_point", lambda: above)
    arm.command(Trajectory(arm.time_s, [1.0], [arm.expert_goal()]))
    for _ in range(20):
        arm.step(0.1)
    assert np.linalg.norm(arm.tip() - above) < 0.005, arm.tip() - above
