"""LeRobot-format datasets read into episodes and training samples: a
hand-written v2.1 dataset for the edge cases, and the v2.1 and v3.0
datasets the real lerobot library wrote under test/fixtures/lerobot/ (see
scripts/fixtures/write_lerobot_fixtures.py for what they hold)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import JOINTS, MICRO, PARAMS_FILE, episode_topics
from video2act_core.data.episode import EpisodeError
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.lerobot import read_lerobot_dataset
from video2act_core.data.samples import load_episodes, load_samples

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
        "codebase_version": version,
        "fps": FPS,
        "chunks_size": 1000,
        "total_episodes": episodes,
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
        "".join(json.dumps({"episode_index": i, "length": ROWS}) + "\n" for i in range(episodes))
    )
    truth = []
    for index in range(episodes):
        states = rng.normal(size=(ROWS, 7)).astype(np.float32)
        actions = rng.normal(size=(ROWS, 7)).astype(np.float32)
        frames = np.zeros((ROWS, SIZE, SIZE, 3), np.uint8)
        for row in range(ROWS):  # a bright square moving right
            frames[row, 20:44, 4 * row : 4 * row + 16] = 220
        table = pa.table(
            {
                "observation.state": list(states),
                "action": list(actions),
                "timestamp": np.arange(ROWS, dtype=np.float32) / FPS,
                "frame_index": np.arange(ROWS),
                "episode_index": np.full(ROWS, index),
                "next.success": [False] * (ROWS - 1) + [True],
            }
        )
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


def stretch_timestamps(path, factor):
    """Rows that outlast their video."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    stretched = np.asarray(table["timestamp"]) * factor
    pq.write_table(table.set_column(table.schema.get_field_index("timestamp"), "timestamp", [stretched]), path)


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
        (
            lambda root: (root / "meta" / "info.json").write_text(
                (root / "meta" / "info.json").read_text().replace("v2.1", "v1.6")
            ),
            "version v1.6",
        ),
        (lambda root: next(root.rglob("*.mp4")).write_bytes(b"not a video"), "cannot decode video"),
        (lambda root: next(root.rglob("*.parquet")).write_bytes(b"PAR1"), "cannot read episode data"),
        (lambda root: stretch_timestamps(next(root.rglob("*.parquet")), 2), "no video frame within"),
    ],
)
def test_broken_datasets_are_clear_errors(tmp_path, break_it, message):
    write_dataset(tmp_path, episodes=1)
    break_it(tmp_path)
    with pytest.raises(EpisodeError, match=message):
        read_lerobot_dataset(tmp_path, JOINTS)


def test_missing_joint_is_a_clear_error(tmp_path):
    write_dataset(tmp_path, episodes=1)
    with pytest.raises(EpisodeError, match="lacks joints"):
        read_lerobot_dataset(tmp_path, [*JOINTS, "elbow_2"])


def test_unsupported_version_is_named_before_anything_else_is_read(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v1.6"}))
    with pytest.raises(EpisodeError, match=r"version v1\.6 is not supported \(reads v2\.0, v2\.1, v3\.0\)"):
        read_lerobot_dataset(tmp_path, JOINTS)


def test_joint_name_map_renames_explicitly_first_then_strips_the_suffix():
    names = JointNameMap(strip_suffix=".pos", explicit={"gripper.pos": "jaw", "base": "shoulder_pan"})
    assert names.names(["shoulder_pan.pos", "gripper.pos", "base", "wrist_roll"]) == [
        "shoulder_pan",
        "jaw",
        "shoulder_pan",
        "wrist_roll",
    ]
    assert JointNameMap().name("elbow_flex.pos") == "elbow_flex.pos"


# The fixtures lerobot wrote: 2 episodes of 20 rows; frame f of episode e
# shows a 16 px white square at x = 4 + 2 f, y = 4 + 28 e; state joint j is
# 100 e + f + j / 10 (SO-101 joints in our order), action the state + 0.5.
FIXTURES = Path(__file__).parent / "fixtures" / "lerobot"
VERSIONS = ["v2.1", "v3.0"]
FIXTURE_ROWS, FIXTURE_FPS, SQUARE = 20, 30, 16
LEROBOT_NAMES = JointNameMap(strip_suffix=".pos")


def square_position(frame):
    """Which (episode, frame index) the pattern in a frame shows."""
    rows, columns = np.nonzero(frame.mean(axis=2) > 128)
    centre = SQUARE / 2 - 0.5
    return (rows.mean() - 4 - centre) / 28, (columns.mean() - 4 - centre) / 2


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("camera", ["observation.images.front", "observation.images.wrist"])  # video, PNG image
def test_datasets_written_by_lerobot_read_back_with_frames_on_their_rows(version, camera):
    assert version in (FIXTURES / version / "WRITTEN_BY.txt").read_text()
    episodes = read_lerobot_dataset(FIXTURES / version, JOINTS, camera=camera, joint_name_map=LEROBOT_NAMES)
    assert [episode.success for episode in episodes] == [False, True]
    row = np.arange(FIXTURE_ROWS)
    for index, episode in enumerate(episodes):
        states = 100 * index + row[:, None] + np.arange(len(JOINTS)) / 10
        np.testing.assert_allclose(episode.states, states, atol=1e-4)
        np.testing.assert_allclose(episode.commands, states + 0.5, atol=1e-4)
        np.testing.assert_allclose(episode.image_stamps_ns, row / FIXTURE_FPS * 1e9, atol=1e3)
        shown = np.array([square_position(frame) for frame in episode.images])
        np.testing.assert_allclose(shown[:, 0], index, atol=0.05)
        np.testing.assert_allclose(shown[:, 1], row, atol=0.25)  # a frame off would be 1


@pytest.mark.parametrize("version", VERSIONS)
def test_lerobot_joint_names_without_a_map_are_a_clear_error(version):
    with pytest.raises(EpisodeError, match=r"lacks joints \['shoulder_pan'.*after name mapping: \['shoulder_pan\.pos'"):
        read_lerobot_dataset(FIXTURES / version, JOINTS)


@pytest.mark.parametrize("version", VERSIONS)
def test_images_are_resized_while_decoding(version):
    episodes = read_lerobot_dataset(
        FIXTURES / version, JOINTS, camera="observation.images.wrist", frame_size=(32, 48), joint_name_map=LEROBOT_NAMES
    )
    assert episodes[0].images.shape == (FIXTURE_ROWS, 32, 48, 3)


def micro_training(dataset: Path, tmp_path: Path) -> list[str]:
    """The train command's arguments for a few steps of a micro model on `dataset`."""
    config = tmp_path / "micro.yaml"
    config.write_text(json.dumps(MICRO))
    return [
        "--data",
        str(dataset),
        "--model-config",
        str(config),
        "--params",
        str(PARAMS_FILE),
        "--strip-joint-suffix",
        ".pos",
        "--batch-size",
        "8",
        "--steps",
        "4",
        "--device",
        "cpu",
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_train_command_trains_on_datasets_written_by_lerobot(version, tmp_path):
    from video2act_core.checkpoint import load_policy, read_manifest
    from video2act_core.train import main as train

    out = tmp_path / "ckpt"
    assert train(micro_training(FIXTURES / version, tmp_path) + ["--out", str(out)]) == 0
    manifest = read_manifest(out)
    assert manifest.metadata["samples"] == 2 * FIXTURE_ROWS and manifest.stats.joint_names == JOINTS
    assert manifest.metadata["camera_pose"] is None  # LeRobot datasets record none
    load_policy(out, device="cpu")


def test_successful_only_leaves_out_the_episodes_that_never_record_success(tmp_path):
    from video2act_core.checkpoint import read_manifest
    from video2act_core.train import main as train

    dataset = FIXTURES / VERSIONS[-1]  # episode 0 fails, episode 1 succeeds
    shared = micro_training(dataset, tmp_path) + ["--cache-dir", str(tmp_path / "cache")]
    assert train(shared + ["--out", str(tmp_path / "every")]) == 0
    assert train(shared + ["--out", str(tmp_path / "successful"), "--successful-only"]) == 0
    metadata = read_manifest(tmp_path / "successful").metadata
    assert metadata["episodes"] == [f"{dataset}#1"] and metadata["samples"] == FIXTURE_ROWS
    # Its own System 2 maps, not the other training's of both episodes.
    assert len(list((tmp_path / "cache").glob("features-*.pt"))) == 2


def test_successful_only_without_a_successful_episode_is_a_clear_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from video2act_core.train import main as train

    dataset = tmp_path / "dataset"
    shutil.copytree(FIXTURES / "v2.1", dataset)
    succeeded = dataset / "data" / "chunk-000" / "episode_000001.parquet"
    table = pq.read_table(succeeded)
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("next.success"), "next.success", pa.array([False] * table.num_rows)
        ),
        succeeded,
    )
    with pytest.raises(SystemExit, match="none of the 2 episodes records success"):
        train(micro_training(dataset, tmp_path) + ["--out", str(tmp_path / "ckpt"), "--successful-only"])


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda root: shutil.rmtree(root / "meta" / "episodes"), "cannot read LeRobot metadata"),
        (lambda root: next(root.rglob("*.mp4")).write_bytes(b"not a video"), "cannot decode video"),
        (lambda root: next((root / "data").rglob("*.parquet")).write_bytes(b"PAR1"), "cannot read episode data"),
    ],
)
def test_broken_v3_datasets_are_clear_errors(tmp_path, break_it, message):
    root = shutil.copytree(FIXTURES / "v3.0", tmp_path / "dataset")
    break_it(root)
    with pytest.raises(EpisodeError, match=message):
        read_lerobot_dataset(root, JOINTS, joint_name_map=LEROBOT_NAMES)
