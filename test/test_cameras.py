"""Image tokens per camera and history frame: frames picked by one rule in
training and live, a wrist camera recorded, trained on and evaluated with,
and tokens that see each camera apart from the streams."""

import csv
import json

import numpy as np
import pytest
import yaml

from conftest import JOINTS, PARAMS_FILE, tiny_model_config
from video2act_core.checkpoint import load_policy, read_manifest
from video2act_core.data.episode import EpisodeTopics
from video2act_core.data.frames import CameraInputs, ViewBuffer, ViewSpec, view_frame_indices
from video2act_core.data.rosbag import read_episode
from video2act_core.data.samples import find_episode_bags, load_samples
from video2act_core.messages import fill_latents_message, latents_from_message
from video2act_core.models.factory import build_models
from video2act_core.params import SimArmParams, node_params
from video2act_core.systems import System2

pytestmark = pytest.mark.training

WRIST_TOPIC = "wrist_camera/image_raw"
TWO_CAMERAS = {"view_cameras": 2, "view_history": 2, "view_spacing_s": 0.2, "view_grid": 4}
SECOND_NS = 1_000_000_000


def test_view_frames_are_the_newest_at_or_before_each_history_time():
    stamps = np.array([0, 90, 210, 300, 405]) * 1_000_000  # an uneven camera, in ns
    # Newest at 405 ms, 200 ms apart: the frames at or before 5 ms, 205 ms and 405 ms.
    np.testing.assert_array_equal(view_frame_indices(stamps, 405_000_000, 3, 200_000_000), [0, 1, 4])
    np.testing.assert_array_equal(view_frame_indices(stamps, 300_000_000, 2, 200_000_000), [1, 3])
    # Before the camera has its history, its first frame repeats; before any frame: nothing.
    np.testing.assert_array_equal(view_frame_indices(stamps, 100_000_000, 2, 200_000_000), [0, 1])
    assert view_frame_indices(stamps, -1, 2, 200_000_000) is None

    # The live buffer picks the same frames from what it kept.
    buffer = ViewBuffer(history=3, spacing_ns=200_000_000, margin_ns=0)
    for index, stamp in enumerate(stamps):
        buffer.push(int(stamp), np.full((2, 2, 3), index, np.uint8))
    picked = buffer.frames_at(405_000_000)
    assert picked.stamps_ns == [0, 90_000_000, 405_000_000]
    assert [int(frame[0, 0, 0]) for frame in picked.frames] == [0, 1, 4]


def test_camera_inputs_wait_for_every_camera_and_flag_one_that_stalls():
    inputs = CameraInputs(num_frames=2, views=ViewSpec(2, 2, 200_000_000), names=["overhead", "wrist"])
    frame = np.zeros((4, 4, 3), np.uint8)
    assert inputs.read()[2] == "waiting for the first frame on overhead"
    inputs.push(0, 5 * SECOND_NS, frame)
    clip, views, problem = inputs.read()
    assert clip is None and problem == "waiting for a frame on wrist at or before the newest on overhead"
    inputs.push(1, 5 * SECOND_NS, frame)
    clip, views, problem = inputs.read(max_lag_s=1.0)
    assert problem == "" and len(views) == 2 and clip.stamps_ns[-1] == 5 * SECOND_NS
    # The overhead camera goes on, the wrist camera does not.
    inputs.push(0, 7 * SECOND_NS, frame)
    clip, views, problem = inputs.read(max_lag_s=1.0)
    assert clip is None and problem.startswith("camera wrist stalled: its newest frame is 2.00 s older than overhead's")
    inputs.clear()
    assert inputs.read()[2] == "waiting for the first frame on overhead"


def two_camera_system2() -> System2:
    encoder, _ = build_models(tiny_model_config(**TWO_CAMERAS), JOINTS)
    return System2(encoder, "two_cameras")


def test_image_tokens_see_each_camera_apart_and_leave_the_streams_alone():
    system2 = two_camera_system2()
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, (system2.config.num_frames, 64, 64, 3), dtype=np.uint8)
    overhead = clip[-2:]
    wrist = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    moved_wrist = wrist.copy()
    moved_wrist[-1, 20:40, 20:40] = 255  # something new before the wrist camera, in its newest frame
    first, second = system2.encode(clip, [overhead, wrist]), system2.encode(clip, [overhead, moved_wrist])
    grid = system2.config.view_grid**2
    assert first.views.shape == (2 * 2 * grid, system2.config.token_dim)
    per_frame = ((second.views - first.views) ** 2).sum(axis=-1).reshape(2, 2, grid)
    # Only the tokens of the wrist camera's newest frame moved; the streams
    # (the video camera's clip) did not.
    assert per_frame[1, 1].sum() > 0
    assert per_frame[0].sum() == 0 and per_frame[1, 0].sum() == 0
    np.testing.assert_array_equal(first.spatial, second.spatial)
    np.testing.assert_array_equal(first.motion, second.motion)

    with pytest.raises(ValueError, match="reads 2 camera"):
        system2.encode(clip, [overhead])
    with pytest.raises(ValueError, match="makes image tokens from 2 cameras; no frames given"):
        system2.encode(clip)


def test_video_camera_image_tokens_come_from_its_clip_when_alone():
    """A one-camera model given only the clip reads the frames `view_spacing_s`
    apart out of it, as the live buffers pick them at motion_fps."""
    encoder, _ = build_models(tiny_model_config(), JOINTS)
    system2 = System2(encoder, "one_camera")
    config = system2.config
    clip = np.random.default_rng(1).integers(0, 255, (config.num_frames, 64, 64, 3), dtype=np.uint8)
    step = round(config.view_spacing_s * config.motion_fps)
    explicit = system2.encode(clip, [clip[[-1 - step, -1]]])
    np.testing.assert_allclose(system2.encode(clip).views, explicit.views, atol=1e-5)  # float32 batch order


def test_image_tokens_travel_in_the_message():
    from video2act_msgs.msg import SpatioMotionLatents

    system2 = two_camera_system2()
    frames = np.random.default_rng(2).integers(0, 255, (system2.config.num_frames, 64, 64, 3), dtype=np.uint8)
    latents = system2.encode(frames, [frames[-2:], frames[-2:]])
    msg = SpatioMotionLatents()
    fill_latents_message(msg, latents, "two_cameras", 3)
    back = latents_from_message(msg).latents
    np.testing.assert_array_equal(back.views, latents.views)
    assert list(msg.image_shape) == list(latents.views.shape)
    without = SpatioMotionLatents()
    latents.views = None
    fill_latents_message(without, latents, "one", 0)
    assert latents_from_message(without).latents.views is None


@pytest.fixture(scope="module")
def two_camera_setup(tmp_path_factory):
    """A params file naming a wrist camera, the tiny model with image tokens of
    both cameras, and two scripted-expert episodes recorded with both."""
    from video2act_sim.expert import main as record

    root = tmp_path_factory.mktemp("two_cameras")
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["/**"]["ros__parameters"]["extra_camera_topics"] = [WRIST_TOPIC]
    params_file = root / "video2act.yaml"
    params_file.write_text(yaml.safe_dump(params))
    model_file = root / "model.yaml"
    model_file.write_text(yaml.safe_dump(tiny_model_config(**TWO_CAMERAS)))
    assert record(["--out", str(root / "demos"), "--episodes", "2", "--params", str(params_file)]) == 0
    return params_file, model_file, root


def test_wrist_camera_is_recorded_and_each_sample_gets_both_cameras_frames(two_camera_setup):
    params_file, _, root = two_camera_setup
    sim = node_params(SimArmParams, params_file, "video2act_sim_arm")
    topics = EpisodeTopics(
        sim.image_topic, sim.joint_states_topic, sim.trajectory_topic, sim.success_topic, extra_cameras=(WRIST_TOPIC,)
    )
    episode = read_episode(find_episode_bags([root / "demos"])[0], topics, JOINTS)
    (wrist,) = episode.extra_cameras
    np.testing.assert_array_equal(wrist.stamps_ns, episode.image_stamps_ns)  # rendered together
    assert wrist.images.shape == episode.images.shape
    assert not np.array_equal(wrist.images, episode.images)
    spec = ViewSpec(2, 2, 200_000_000)
    samples, _ = load_samples([episode], JOINTS, num_frames=4, horizon=5, views=spec)
    step = round(0.2 * sim.camera_rate_hz)  # 200 ms at the camera's rate
    late = len(samples.clips) - 1
    newest = samples.clips.frame_indices[late][-1]
    np.testing.assert_array_equal(samples.views.frame_indices[late], [[newest - step, newest]] * 2)
    views = samples.views[late]
    np.testing.assert_array_equal(views[0, -1], episode.images[newest])
    np.testing.assert_array_equal(views[1, -1], wrist.images[newest])


@pytest.fixture(scope="module")
def two_camera_checkpoint(two_camera_setup):
    from video2act_core.train import main as train

    params_file, model_file, root = two_camera_setup
    checkpoint = root / "checkpoint"
    assert (
        train(
            [
                "--data",
                str(root / "demos"),
                "--out",
                str(checkpoint),
                "--steps",
                "4",
                "--batch-size",
                "8",
                "--params",
                str(params_file),
                "--model-config",
                str(model_file),
            ]
        )
        == 0
    )
    return checkpoint


def test_two_camera_model_trains_and_runs_closed_loop(two_camera_setup, two_camera_checkpoint, tmp_path):
    from video2act_core.train import main as train
    from video2act_eval.evaluate import main as evaluate

    params_file, model_file, root = two_camera_setup
    assert read_manifest(two_camera_checkpoint).metadata["cameras"] == ["camera/image_raw", WRIST_TOPIC]
    policy = load_policy(two_camera_checkpoint, device="cpu")
    assert policy.system1.config.view_tokens and policy.system2.config.view_cameras == 2
    assert (
        evaluate(
            [
                "--checkpoint",
                str(two_camera_checkpoint),
                "--episodes",
                "1",
                "--params",
                str(params_file),
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    with open(tmp_path / "eval" / "episodes.csv") as f:
        (episode,) = list(csv.DictReader(f))
    assert int(episode["chunks"]) > 0

    # Without the wrist camera named, training and evaluation say what is missing.
    with pytest.raises(SystemExit, match="name 1 in extra_camera_topics"):
        train(
            [
                "--data",
                str(root / "demos"),
                "--out",
                str(tmp_path / "other"),
                "--steps",
                "1",
                "--params",
                str(PARAMS_FILE),
                "--model-config",
                str(model_file),
            ]
        )
    with pytest.raises(ValueError, match="the policy reads 2"):
        evaluate(
            [
                "--checkpoint",
                str(two_camera_checkpoint),
                "--episodes",
                "1",
                "--params",
                str(PARAMS_FILE),
                "--out",
                str(tmp_path / "eval_one"),
            ]
        )


def test_a_two_camera_bag_replays_through_both_nodes(two_camera_setup, two_camera_checkpoint, tmp_path):
    from video2act_eval.replay import main as replay

    params_file, _, root = two_camera_setup
    bag = find_episode_bags([root / "demos"])[0]
    assert (
        replay(
            [
                "--bag",
                str(bag),
                "--checkpoint",
                str(two_camera_checkpoint),
                "--params",
                str(params_file),
                "--rate",
                "0.1",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["extra_camera_topics"] == ["/" + WRIST_TOPIC]
    assert report["active_chunks"] > 0


def test_old_checkpoints_without_image_tokens_still_load(tmp_path):
    """Format-2 checkpoints written before image tokens existed have no view
    settings: they load as models without them."""
    from video2act_core.checkpoint import init_checkpoint

    config = tiny_model_config(view_cameras=0)
    init_checkpoint(tmp_path / "old", config, JOINTS)
    manifest_file = tmp_path / "old" / "checkpoint.json"
    manifest = json.loads(manifest_file.read_text())
    for key in ("view_cameras", "view_history", "view_spacing_s", "view_grid"):
        del manifest["system2"][key]
    del manifest["system1"]["view_tokens"]
    manifest_file.write_text(json.dumps(manifest))
    policy = load_policy(tmp_path / "old", device="cpu")
    frames = np.zeros((policy.system2.config.num_frames, 64, 64, 3), np.uint8)
    latents = policy.system2.encode(frames)
    assert latents.views is None
    assert np.isfinite(policy.system1.act(latents, np.zeros(len(JOINTS)))).all()


def test_more_cameras_than_the_simulated_arm_renders_are_refused():
    from dataclasses import replace

    from video2act_sim.arm import KinematicArm
    from video2act_sim.camera import camera_noise_streams

    sim = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm")
    arm = KinematicArm()
    assert len(camera_noise_streams(0, arm, replace(sim, extra_camera_topics=[WRIST_TOPIC]))) == 2
    with pytest.raises(ValueError, match=r"renders cameras \('overhead', 'wrist'\); .* name 3"):
        camera_noise_streams(0, arm, replace(sim, extra_camera_topics=[WRIST_TOPIC, "third/image_raw"]))
