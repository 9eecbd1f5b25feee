"""The camera pose: composed from a static transform tree, recorded in
bags by the expert, carried into checkpoints by training, and compared with
a tolerance."""

import math

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE, episode_topics
from video2act_core.camera_pose import CameraPose, compose_static_tree, demonstrations_camera_pose, pose_mismatch
from video2act_core.data.rosbag import EpisodeRecorder, read_episode
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_sim.arms import make_arm
from video2act_sim.episode import run_episode
from video2act_sim.expert import ScriptedReacher

SIM = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm")
PERIOD = node_params(PolicyParams, PARAMS_FILE, "video2act_policy").action_period_s
FRAMES = (SIM.base_frame, SIM.camera_frame)


def about_z(angle: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2))


def apply(pose: CameraPose, point) -> np.ndarray:
    """`point` given in pose.child, expressed in pose.parent."""
    return np.asarray(pose.then(CameraPose(pose.child, "p", point, (0, 0, 0, 1))).translation)


def test_a_chain_composes_to_the_camera_in_the_base_frame():
    # world -> base_link (turned 90 deg), world -> mast -> camera_link -> optical
    links = [
        CameraPose("world", "base_link", (1.0, 0.0, 0.0), about_z(math.pi / 2)),
        CameraPose("world", "mast", (1.0, 2.0, 0.0), (0, 0, 0, 1)),
        CameraPose("mast", "camera_link", (0.0, 0.0, 1.5), about_z(math.pi)),
        CameraPose("camera_link", "optical", (0.1, 0.0, 0.0), (0.5, -0.5, 0.5, -0.5)),
    ]
    pose = compose_static_tree(links, "base_link", "optical")
    assert (pose.parent, pose.child) == ("base_link", "optical")
    # The optical origin: world (1 - 0.1, 2, 1.5); in base_link (turned +90 deg at (1, 0)) that is (2, 0.1, 1.5).
    np.testing.assert_allclose(pose.translation, (2.0, 0.1, 1.5), atol=1e-12)
    # Any point agrees when mapped through the chain or through the composed pose.
    point = np.array([0.3, -0.2, 0.7])
    via_world = apply(links[1].then(links[2]).then(links[3]), point)
    np.testing.assert_allclose(apply(links[0].inverse(), via_world), apply(pose, point), atol=1e-12)
    assert compose_static_tree(links, "base_link", "elsewhere") is None
    assert compose_static_tree(links[:1] + links[2:], "base_link", "optical") is None


def test_mismatch_says_how_far_the_camera_moved():
    recorded = CameraPose("base_link", "cam", (0.5, 0.0, 0.8), about_z(0.0))
    assert (
        pose_mismatch(recorded, CameraPose("base_link", "cam", (0.51, 0.0, 0.8), about_z(0.02)), 0.02, math.radians(3))
        is None
    )
    moved = pose_mismatch(
        recorded, CameraPose("base_link", "cam", (0.55, 0.0, 0.8), about_z(0.0)), 0.02, math.radians(3)
    )
    assert "5.0 cm" in moved
    turned = pose_mismatch(
        recorded, CameraPose("base_link", "cam", (0.5, 0.0, 0.8), about_z(math.radians(10))), 0.02, math.radians(3)
    )
    assert "10.0 deg" in turned
    assert "frames differ" in pose_mismatch(
        recorded, CameraPose("base_link", "other", (0.5, 0, 0.8), about_z(0)), 0.02, 1.0
    )
    with pytest.raises(ValueError, match="not a finite"):
        CameraPose("a", "b", (float("nan"), 0, 0), (0, 0, 0, 1))


def test_expert_bags_record_the_camera_pose_and_read_it_back(tmp_path):
    expert = ScriptedReacher(horizon=4, action_period_s=PERIOD)
    with EpisodeRecorder(tmp_path / "bag", episode_topics(), JOINTS) as recorder:
        run_episode(expert, seed=3, sim=SIM, action_period_s=PERIOD, num_frames=2, recorder=recorder)
    episode = read_episode(tmp_path / "bag", episode_topics(), JOINTS, FRAMES)
    expected = make_arm(SIM.backend, len(JOINTS), 3).camera_pose(*FRAMES)
    assert episode.camera_pose is not None
    assert expected.difference(episode.camera_pose) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert read_episode(tmp_path / "bag", episode_topics(), JOINTS).camera_pose is None


def test_demonstrations_agree_on_one_pose_or_record_none():
    pose = CameraPose("base_link", "cam", (0.5, 0.0, 0.8), about_z(0.0))
    bumped = CameraPose("base_link", "cam", (0.5, 0.1, 0.8), about_z(0.0))
    assert demonstrations_camera_pose([pose, pose], 0.02, 0.05) == (pose, "")
    none, why = demonstrations_camera_pose([pose, bumped], 0.02, 0.05)
    assert none is None and "differs between episodes (1 of 2)" in why
    assert demonstrations_camera_pose([pose, None], 0.02, 0.05)[0] is None
