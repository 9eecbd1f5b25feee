"""LeRobot-format datasets (v2.1) read into episodes and training samples."""

import json

import numpy as np
import pytest

from conftest import JOINTS, episode_topics
from video2act_core.data.bags import BagError
from video2act_core.data.dataset import load_episodes, load_samples
from video2act_core.data.lerobot import read_lerobot_dataset

FPS, ROWS, SIZE = 10, 12, 64
# The dataset names its joints in another order and has an extra one.
DATASET_JOINTS = ["gripper", *JOINTS[:-1], "base_rotation"]


def write_dataset(root, episodes=2, version="v2.1"):
    """A LeRobot v2.1 dataset as LeRobot writes it: a parquet file per
    episode, an H.264 mp4 per camera and episode, and the meta files."""
    import av
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    info = {
        "codebase_version": version, "fps": FPS, "chunks_size": 1000, "total_episodes": episodes,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            "observation.state": {"dtype": "float32", "shape": [7], "names": DATASET_JOINTS},
            "action": {"dtype": "float32", "shape": [7], "names": {"motors": DATASET_JOINTS}},
            "observation.images.front": {"dtype": "video", "shape": [SIZE, SIZE, 3]},
        },
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    (root / "meta" / "episodes.jsonl").write_text(
        "".join(json.dumps({"episode_index": i, "length": ROWS}) + "\n" for i in range(episodes)))
    truth = []
    for index in range(episodes):
        states = rng.normal(size=(ROWS, 7)).astype(np.float32)
        actions = rng.normal(size=(ROWS, 7)).astype(np.float32)
        frames = np.zeros((ROWS, SIZE, SIZE, 3), np.uint8)
        for row in range(ROWS):  # a bright square moving right
            frames[row, 20:44, 4 * row : 4 * row + 16] = 220
        table = pa.table({
            "observation.state": list(states), "action": list(actions),
            "timestamp": np.arange(ROWS, dtype=np.float32) / FPS,
            "frame_index": np.arange(ROWS), "episode_index": np.full(ROWS, index), "next.success": [False] * (ROWS - 1) + [True],
        })
        data = root / f"data/chunk-000/episode_{index:06d}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, data)
        video = root / f"videos/chunk-000/observation.images.front/episode_{index:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(video), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width = stream.height = SIZE
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "10"}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        truth.append((states, actions, frames))
    return truth


def reorder(values):
    return values[:, [DATASET_JOINTS.index(n) for n in JOINTS]]


def test_episodes_read_back_in_our_joint_order(tmp_path):
    truth = write_dataset(tmp_path)
    episodes = read_lerobot_dataset(tmp_path, JOINTS)
    assert len(episodes) == 2
    for episode, (states, actions, frames) in zip(episodes, truth):
        np.testing.assert_allclose(episode.states, reorder(states), atol=1e-6)
        np.testing.assert_allclose(episode.commands, reorder(actions), atol=1e-6)
        assert episode.images.shape == frames.shape
        assert np.abs(episode.images.astype(int) - frames).mean() < 6  # lossy video, near-lossless setting
        # LeRobot stores timestamps as float32: exact to well under a microsecond.
        np.testing.assert_allclose(episode.image_stamps_ns, np.arange(ROWS) / FPS * 1e9, atol=1e3)
        assert episode.success


def test_frames_are_resized_while_decoding(tmp_path):
    write_dataset(tmp_path, episodes=1)
    (episode,) = read_lerobot_dataset(tmp_path, JOINTS, frame_size=(32, 48))
    assert episode.images.shape == (ROWS, 32, 48, 3)


def test_training_samples_from_a_lerobot_dataset(tmp_path):
    write_dataset(tmp_path)
    episodes, sources = load_episodes([tmp_path], episode_topics(), JOINTS)
    samples, stats = load_samples(episodes, JOINTS, num_frames=4, horizon=5)
    assert len(samples.clips) == 2 * ROWS and sources == [f"{tmp_path}#0", f"{tmp_path}#1"]
    assert stats.joint_names == JOINTS


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda root: (root / "meta" / "info.json").write_text("{"), "cannot read LeRobot metadata"),
        (lambda root: (root / "meta" / "info.json").write_text(
            (root / "meta" / "info.json").read_text().replace("v2.1", "v3.0")), "version v3.0"),
        (lambda root: next(root.rglob("*.mp4")).write_bytes(b"not a video"), "cannot decode video"),
        (lambda root: next(root.rglob("*.parquet")).write_bytes(b"PAR1"), "cannot read episode data"),
    ],
)
def test_broken_datasets_are_clear_errors(tmp_path, break_it, message):
    write_dataset(tmp_path, episodes=1)
    break_it(tmp_path)
    with pytest.raises(BagError, match=message):
        read_lerobot_dataset(tmp_path, JOINTS)


def test_missing_joint_is_a_clear_error(tmp_path):
    write_dataset(tmp_path, episodes=1)
    with pytest.raises(BagError, match="lacks joints"):
        read_lerobot_dataset(tmp_path, [*JOINTS, "elbow_2"])
