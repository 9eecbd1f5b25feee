"""rosbag2 episodes (mcap and sqlite3), the scripted expert, and the
time-aligned dataset built from them."""

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE, episode_topics
from video2act_core.data.episode import EpisodeError
from video2act_core.data.rosbag import EpisodeRecorder, read_episode
from video2act_core.data.samples import episode_samples, find_episode_bags, load_episodes, load_samples
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_sim.episode import run_episode
from video2act_sim.expert import ScriptedReacher

SIM = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm")
PERIOD = node_params(PolicyParams, PARAMS_FILE, "video2act_policy").action_period_s


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_recorded_episode_reads_back(tmp_path, storage):
    expert = ScriptedReacher(horizon=4, action_period_s=PERIOD)
    with EpisodeRecorder(tmp_path / "bag", episode_topics(), JOINTS, storage) as recorder:
        result = run_episode(expert, seed=7, sim=SIM, action_period_s=PERIOD, num_frames=2, recorder=recorder)
    episode = read_episode(tmp_path / "bag", episode_topics(), JOINTS)
    assert result.success and episode.success
    assert episode.images.shape[1:] == (SIM.image_height, SIM.image_width, 3)
    assert episode.states.shape[1] == len(JOINTS) and episode.commands.shape[1] == len(JOINTS)
    for stamps in (episode.image_stamps_ns, episode.state_stamps_ns, episode.command_stamps_ns):
        assert np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(np.diff(episode.command_stamps_ns) * 1e-9, PERIOD, atol=1e-6)
    # The camera ran at its configured rate.
    rate = (len(episode.images) - 1) / ((episode.image_stamps_ns[-1] - episode.image_stamps_ns[0]) * 1e-9)
    assert rate == pytest.approx(SIM.camera_rate_hz, rel=0.1)


def test_expert_solves_every_seed_tried():
    expert = ScriptedReacher(horizon=16, action_period_s=PERIOD)
    results = [run_episode(expert, seed, SIM, PERIOD, num_frames=2) for seed in range(10)]
    assert all(r.success for r in results), [(r.seed, r.final_distance) for r in results]


def test_truncated_bag_is_a_clear_error(expert_bags, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(find_episode_bags([expert_bags])[0], bag)
    data = next(bag.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    with pytest.raises(EpisodeError, match="cannot read bag"):
        read_episode(bag, episode_topics(), JOINTS)


def test_bag_without_the_joints_is_a_clear_error(expert_bags):
    with pytest.raises(EpisodeError, match="no usable joint states"):
        read_episode(find_episode_bags([expert_bags])[0], episode_topics(), ["not_a_joint"])


def test_samples_are_time_aligned(expert_bags):
    episode = read_episode(find_episode_bags([expert_bags])[0], episode_topics(), JOINTS)
    samples = episode_samples(episode, num_frames=4, horizon=5)
    assert len(samples.clips) == len(episode.commands)
    k = 3
    stamp = episode.command_stamps_ns[k]
    newest = np.searchsorted(episode.image_stamps_ns, stamp, side="right") - 1
    np.testing.assert_array_equal(samples.clips[k][-1], episode.images[newest])
    np.testing.assert_array_equal(samples.clips[k][0], episode.images[max(newest - 3, 0)])
    state = np.searchsorted(episode.state_stamps_ns, stamp, side="right") - 1
    np.testing.assert_array_equal(samples.states[k], episode.states[state])
    np.testing.assert_array_equal(samples.actions[k], episode.commands[k : k + 5])
    # At the episode's end the last command is repeated.
    np.testing.assert_array_equal(samples.actions[-1], np.repeat(episode.commands[-1:], 5, axis=0))


def test_statistics_come_from_the_data(expert_bags):
    episodes, sources = load_episodes([expert_bags], episode_topics(), JOINTS)
    assert len(sources) == 2
    samples, stats = load_samples(episodes, JOINTS, 4, 5)
    np.testing.assert_allclose(stats.state_mean, samples.states.mean(0))
    assert stats.joint_names == JOINTS
    assert set(samples.episode_index) == {0, 1}


def test_frames_spilled_to_disk_give_the_same_samples_at_the_model_size(expert_bags, tmp_path):
    in_memory, _ = load_episodes([expert_bags], episode_topics(), JOINTS, frame_size=(32, 40))
    spilled, _ = load_episodes([expert_bags], episode_topics(), JOINTS, frame_size=(32, 40), spill_dir=tmp_path)
    assert all(isinstance(e.images, np.memmap) for e in spilled) and len(list(tmp_path.glob("*.npy"))) == 2
    resident, mapped = load_samples(in_memory, JOINTS, 4, 5)[0], load_samples(spilled, JOINTS, 4, 5)[0]
    assert resident.clips[0].shape == (4, 32, 40, 3)
    for i in (0, len(resident.clips) // 2, len(resident.clips) - 1):
        np.testing.assert_array_equal(resident.clips[i], mapped.clips[i])


def test_camera_augmentation_can_leave_the_newest_frame_where_the_target_is():
    from video2act_core.data.augmentation import CameraAugmentation

    clip = np.zeros((12, 32, 32, 3), np.uint8)
    clip[:, 10:14, 20:24] = 200  # a static target
    quiet = dict(probability=1.0, gain=(1.0, 1.0), white_balance=0.0, flicker=0.0, noise_std=(0.0, 0.0))
    rng = np.random.default_rng(0)
    moved = lambda frames: [not np.array_equal(frame, clip[0]) for frame in frames]
    augmented = [CameraAugmentation(**quiet, shake_newest=False)(clip, rng) for _ in range(20)]
    assert all(not moved(a[-1:])[0] for a in augmented)
    assert any(any(moved(a[:-1])) for a in augmented)
    shaken = [CameraAugmentation(**quiet)(clip, rng) for _ in range(20)]  # the default shakes it too
    assert any(moved(a[-1:])[0] for a in shaken)


@pytest.mark.parametrize(
    "scene", [[], ["--backend", "mujoco_so101", "--task", "push"]], ids=["kinematic", "mujoco_push"]
)
def test_the_wanderer_records_activity_without_a_task_within_the_limits(tmp_path, scene):
    """Videos to pretrain the video model on (`--wander`): the arm steered
    toward changing goals, random or the task expert's with noise, every
    command within the policy's joint limits, and the camera sees it move."""
    from video2act_sim.expert import main as record

    policy = node_params(PolicyParams, PARAMS_FILE, "video2act_policy")
    episodes = 1 if scene else 2
    arguments = ["--out", str(tmp_path), "--episodes", str(episodes), "--wander", "--params", str(PARAMS_FILE)]
    assert record(arguments + scene) == 0
    recorded = [read_episode(bag, episode_topics(), JOINTS) for bag in find_episode_bags([tmp_path])]
    assert len(recorded) == episodes
    for episode in recorded:
        assert np.all(episode.commands >= np.asarray(policy.joint_lower_limits) - 1e-9)
        assert np.all(episode.commands <= np.asarray(policy.joint_upper_limits) + 1e-9)
        assert episode.states.std(axis=0).max() > 0.05  # the arm moves
        assert np.abs(np.diff(episode.images.astype(np.int16), axis=0)).mean() > 0.1  # and the camera sees it


def test_png_recordings_read_back_to_the_raw_frames_at_a_fraction_of_the_size(tmp_path):
    """Pretraining needs hours of video: `--image-format png` stores them
    lossless as CompressedImage, as a robot's image_transport records them."""
    from video2act_sim.expert import main as record

    for image_format in ("raw", "png"):
        arguments = ["--out", str(tmp_path / image_format), "--episodes", "1", "--wander", "--params", str(PARAMS_FILE)]
        assert record(arguments + ["--image-format", image_format]) == 0
    raw, png = (
        read_episode(find_episode_bags([tmp_path / name])[0], episode_topics(), JOINTS) for name in ("raw", "png")
    )
    np.testing.assert_array_equal(png.images, raw.images)
    size = lambda name: sum(f.stat().st_size for f in (tmp_path / name).rglob("*.mcap"))
    assert size("png") < 0.5 * size("raw")


def test_recorded_episodes_cycle_through_the_scenes_asked_for(tmp_path):
    """Pretraining videos of every scene split (`--scenes`): the same seed
    in another scene starts from the same arm, and looks different."""
    from video2act_sim.expert import main as record

    for scenes in (["original"], ["background", "original"]):
        out = tmp_path / "_".join(scenes)
        arguments = ["--out", str(out), "--episodes", "1", "--wander", "--params", str(PARAMS_FILE)]
        assert record(arguments + ["--scenes", *scenes]) == 0
    original, background = (
        read_episode(find_episode_bags([tmp_path / name])[0], episode_topics(), JOINTS)
        for name in ("original", "background_original")
    )
    np.testing.assert_array_equal(original.states[0], background.states[0])
    assert np.abs(original.images[0].astype(np.int16) - background.images[0]).mean() > 5
