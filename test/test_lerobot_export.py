"""Bags exported as LeRobot v3.0 datasets (video2act_core.data.lerobot_export):
read back by our reader as the bags read, and, through the committed
fixture test/fixtures/lerobot_export/ (see
scripts/fixtures/write_lerobot_export_fixture.py and
read_lerobot_export_fixture.py), by the real lerobot 0.4.4."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from test_replay import write_outside_bag

from conftest import JOINTS, PARAMS_FILE, episode_topics
from video2act_core.data.episode import CameraRecording, Episode, EpisodeTopics
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.lerobot import read_lerobot_dataset
from video2act_core.data.lerobot_export import (
    LeRobotWriter,
    aggregate_stats,
    camera_name,
    feature_stats,
    image_stats,
    resample,
    sample_indices,
)
from video2act_core.data.lerobot_export import main as export
from video2act_core.data.rosbag import read_episode
from video2act_core.data.samples import find_episode_bags, load_episodes, load_samples

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "test" / "fixtures" / "lerobot_export"
_spec = importlib.util.spec_from_file_location(
    "write_lerobot_export_fixture", REPO / "scripts" / "fixtures" / "write_lerobot_export_fixture.py"
)
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)
CAMERAS = ["observation.images.camera", "observation.images.wrist_camera"]
STRIP_POS = JointNameMap(strip_suffix=".pos")
FRAME_ERROR = 4.0  # mean absolute error of a decoded frame (0-255), AV1 at lerobot's crf 30


# ---------------------------------------------------------------- what the fixture bags hold


def fixture_rows(episode: int, missing=fixture.MISSING) -> dict:
    """Row k of the fixture's episode: frame k, state 100 e + k + j / 10, the
    command issued after it (state + 0.5) or, where none was, the one in force."""
    rows = np.arange(fixture.ROWS[episode])
    states = 100 * episode + rows[:, None] + np.arange(len(JOINTS)) / 10
    commanded = rows.copy()
    if missing is not None and missing[0] == episode:
        commanded[missing[1]] = missing[1] - 1
    actions = 100 * episode + commanded[:, None] + np.arange(len(JOINTS)) / 10 + 0.5
    success = (episode == 1) & (rows >= fixture.SUCCESS_FROM)
    return {"states": states, "actions": actions, "success": success, "task": fixture.TASKS[episode]}


def square_position(frame: np.ndarray, camera: int) -> tuple[float, float]:
    """(episode, frame index) that a fixture frame's square shows."""
    rows, columns = np.nonzero(frame.min(axis=2) > 128)  # white
    along, across = (columns.mean(), rows.mean()) if camera == 0 else (rows.mean(), columns.mean())
    centre = fixture.SQUARE / 2 - 0.5
    return (across - 4 - centre) / 24, (along - 4 - centre) / 2


def export_fixture_bags(tmp_path, missing=fixture.MISSING) -> tuple[Path, Path]:
    """The fixture's bags (under tmp_path/bags) and their export, as the fixture script makes them."""
    bags = tmp_path / "bags"
    fixture.write_bags(bags, missing)
    out = tmp_path / "dataset"
    assert export(fixture.export_arguments(bags, out)) == 0
    return bags, out


# ---------------------------------------------------------------- round trips through our reader


def test_fixture_bags_read_back_from_the_export_as_recorded(tmp_path):
    bags, out = export_fixture_bags(tmp_path)
    for camera, key in enumerate(CAMERAS):
        episodes = read_lerobot_dataset(out, JOINTS, camera=key)
        assert len(episodes) == 2
        for index, episode in enumerate(episodes):
            expected = fixture_rows(index)
            rows = np.arange(len(expected["states"]))
            np.testing.assert_allclose(episode.states, expected["states"], atol=1e-4)
            np.testing.assert_allclose(episode.commands, expected["actions"], atol=1e-4)
            np.testing.assert_allclose(episode.image_stamps_ns, rows / fixture.FPS * 1e9, atol=1e3)
            assert episode.success == bool(expected["success"][-1]) and episode.instruction == expected["task"]
            shown = np.array([square_position(frame, camera) for frame in episode.images])
            np.testing.assert_allclose(shown[:, 0], index, atol=0.02)
            np.testing.assert_allclose(shown[:, 1], rows, atol=0.1)  # a frame off would be 1
            # And frame by frame the bag's own, through the codec's loss.
            recorded = read_episode(bags / f"episode_{index:03d}", fixture.TOPICS, JOINTS, joint_name_map=STRIP_POS)
            source = (recorded.images if camera == 0 else recorded.extra_cameras[0].images).astype(int)
            assert np.abs(episode.images - source).mean(axis=(1, 2, 3)).max() < FRAME_ERROR


def test_training_samples_from_the_export_equal_those_from_the_bags(tmp_path):
    """Commands at the camera's rate, a little after each frame: training on
    the export sees the same frames, states and action chunks as on the bags."""
    bags, out = export_fixture_bags(tmp_path, None)
    from_bags, _ = load_episodes([bags], fixture.TOPICS, JOINTS, joint_name_map=STRIP_POS)
    from_export, _ = load_episodes([out], fixture.TOPICS, JOINTS)
    recorded, _ = load_samples(from_bags, JOINTS, num_frames=4, horizon=5)
    exported, _ = load_samples(from_export, JOINTS, num_frames=4, horizon=5)
    assert len(exported.clips) == len(recorded.clips) == sum(fixture.ROWS)
    np.testing.assert_array_equal(exported.episode_index, recorded.episode_index)
    np.testing.assert_allclose(exported.states, recorded.states, atol=1e-4)
    np.testing.assert_allclose(exported.actions, recorded.actions, atol=1e-4)
    np.testing.assert_array_equal(exported.clips.frame_indices, recorded.clips.frame_indices)
    errors = [np.abs(exported.clips[i].astype(int) - recorded.clips[i]).mean() for i in range(len(exported.clips))]
    assert max(errors) < FRAME_ERROR


def rule_rows(episode: Episode, fps: int):
    """The module docstring's rule, written out row by row: the frame nearest
    each grid time, the newest state at or before it, the first command from
    it to the next row's frame, else the one in force."""
    period = 1e9 / fps
    frames, states, commands = episode.image_stamps_ns, episode.state_stamps_ns, episode.command_stamps_ns
    first = next(i for i, stamp in enumerate(frames) if stamp >= states[0] and stamp + period > commands[0])
    grid = [frames[first] + r * period for r in range(int((frames[-1] - frames[first]) / period + 0.5) + 1)]
    chosen = [first + min(range(len(frames) - first), key=lambda i: (abs(frames[first + i] - g), i)) for g in grid]
    rows = []
    for r, frame in enumerate(chosen):
        tau = frames[frame]
        end = next((frames[later] for later in chosen[r + 1 :] if frames[later] > tau), tau + period)
        state = max(i for i, stamp in enumerate(states) if stamp <= tau)
        issued = [i for i, stamp in enumerate(commands) if tau <= stamp < end]
        before = [i for i, stamp in enumerate(commands) if stamp < tau]
        command = issued[0] if issued else (before[-1] if before else 0)
        rows.append((frame, episode.states[state], episode.commands[command], grid[r], tau))
    return rows


@pytest.mark.parametrize("source, fps", [("robot", None), ("robot", 10), ("expert", None)])
def test_rows_follow_the_stated_rule(source, fps, expert_bags, tmp_path):
    """A robot's bag (jpeg at ~16.7 Hz, joints `.pos` in another order, sqlite3)
    and the scripted expert's (frames on 20 ms physics ticks at 15 Hz)."""
    if source == "robot":
        bag = tmp_path / "bag"
        write_outside_bag(bag)
        topics = EpisodeTopics("/cam/color/image_raw", "/arm/joint_states", "/arm/joint_trajectory", "/none")
        arguments = [
            "--image-topic",
            topics.image,
            "--joint-states-topic",
            topics.joint_states,
            "--command-topic",
            topics.trajectory,
            "--success-topic",
            topics.success,
            "--strip-joint-suffix",
            ".pos",
        ]
        joint_map = STRIP_POS
    else:
        bag = find_episode_bags([expert_bags])[0]
        topics, arguments, joint_map = episode_topics(), [], None
    out = tmp_path / "dataset"
    assert (
        export(
            [
                "--bags",
                str(bag),
                "--out",
                str(out),
                "--params",
                str(PARAMS_FILE),
                "--extra-camera-topics",
                *arguments,
                *(["--fps", str(fps)] if fps else []),
            ]
        )
        == 0
    )
    recorded = read_episode(bag, topics, JOINTS, joint_name_map=joint_map)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert ("next.success" in info["features"]) == (source == "expert")  # only where the bag records success
    default = int(round((len(recorded.image_stamps_ns) - 1) / np.ptp(recorded.image_stamps_ns) * 1e9))
    assert info["fps"] == (fps or default)
    expected = rule_rows(recorded, info["fps"])
    (episode,) = read_lerobot_dataset(out, JOINTS)
    assert len(episode.images) == len(expected)
    np.testing.assert_allclose(episode.states, [row[1] for row in expected], atol=1e-6)
    np.testing.assert_allclose(episode.commands, [row[2] for row in expected], atol=1e-6)
    frames = recorded.images[[row[0] for row in expected]].astype(int)
    assert np.abs(episode.images - frames).mean(axis=(1, 2, 3)).max() < FRAME_ERROR
    assert episode.success == recorded.success and episode.instruction == recorded.instruction
    shown = [row[0] for row in expected]
    if source == "robot" and fps is None:
        # 16.7 Hz rounds up to 17 fps: the grid gains on the camera, and a
        # frame is shown twice where it has gained a whole frame.
        assert info["fps"] == 17 and len(shown) == len(recorded.images) + 1 == len(set(shown)) + 1
    else:
        # Each row's frame within half a period of its grid time, jitter and all.
        assert max(abs(row[3] - row[4]) for row in expected) <= 0.5e9 / info["fps"]
        assert len(set(shown)) == len(shown)
    if source == "expert":  # the camera's rate: every frame once, none dropped or repeated
        assert shown == list(range(len(recorded.images)))


def test_the_rule_on_a_hand_made_episode():
    """Frames every 100 ms from 20 ms (one dropped at 520 ms, one 30 ms late
    at 330 ms), states every 10 ms from 50 ms, commands 5 ms after some
    frames, success from 400 ms: the rows, worked out by hand."""
    frames = np.array([20, 120, 220, 330, 420, 620, 720]) * 10**6
    states = np.arange(50, 800, 10) * 10**6
    commands = np.array([125, 225, 425, 725]) * 10**6
    episode = Episode(
        frames,
        np.zeros((7, 2, 2, 3), np.uint8),
        states,
        states[:, None] / 1e6,
        commands,
        commands[:, None] / 1e6,
        True,
        extra_cameras=[CameraRecording(np.array([100, 300, 500, 700]) * 10**6, np.zeros((4, 2, 2, 3), np.uint8))],
    )
    success = np.array([150, 400, 500]) * 10**6, np.array([False, True, False])
    rows = resample(episode, 10, success)
    # The frame at 20 ms has no state before it: the rows start at 120 ms.
    np.testing.assert_array_equal(rows.times_ns / 1e6, [120, 220, 330, 420, 420, 620, 720])
    # 520 ms, no frame: its neighbours are as near; the earlier is repeated.
    np.testing.assert_array_equal(rows.frame_indices[0], [1, 2, 3, 4, 4, 5, 6])
    np.testing.assert_array_equal(rows.frame_indices[1], [0, 1, 1, 2, 2, 3, 3])  # nearest the grid times
    np.testing.assert_array_equal(rows.states[:, 0], [120, 220, 330, 420, 420, 620, 720])
    # Issued in the row's period, else in force; the repeated frame's rows share theirs.
    np.testing.assert_array_equal(rows.actions[:, 0], [125, 225, 225, 425, 425, 425, 725])
    # Latched from the first success before a row's period ends; the last row: ever.
    np.testing.assert_array_equal(rows.success, [False, False, True, True, True, True, True])
    late = resample(episode, 10, (np.array([150, 900]) * 10**6, np.array([False, True])))
    np.testing.assert_array_equal(late.success, [False] * 6 + [True])  # after the last period: the episode's


def test_a_first_row_decided_after_its_period_takes_the_first_command():
    """The second frame 10 ms early: the first command (195 ms) falls in the
    second row's period, and the first row has none in force yet."""
    frames = np.array([100, 190, 300]) * 10**6
    states = np.arange(0, 400, 10) * 10**6
    commands = np.array([195, 300]) * 10**6
    episode = Episode(
        frames,
        np.zeros((3, 2, 2, 3), np.uint8),
        states,
        states[:, None] / 1e6,
        commands,
        commands[:, None] / 1e6,
        False,
    )
    rows = resample(episode, 10)
    np.testing.assert_array_equal(rows.actions[:, 0], [195, 195, 300])
    assert rows.success is None


# ---------------------------------------------------------------- the command line


def write_small_bag(path: Path, frames: int = 5, size: int = 32, success: bool = True, state_lag_s: float = 0) -> Path:
    """A bag on the fixture's topics: `frames` frames at 10 Hz, states
    (`state_lag_s` later) and commands with them."""
    from dataclasses import replace

    from video2act_core.data.rosbag import EpisodeRecorder

    topics = replace(fixture.TOPICS, extra_cameras=())
    with EpisodeRecorder(path, topics, JOINTS) as recorder:
        for k in range(frames):
            ns = fixture.START_NS + k * 100_000_000
            recorder.joint_state(ns + int(state_lag_s * 1e9), np.full(len(JOINTS), k, float), np.zeros(len(JOINTS)))
            recorder.image(ns, np.full((size, size, 3), 40 * k, np.uint8))
            recorder.command(ns + 1_000_000, np.full((1, len(JOINTS)), k + 0.5), 0.1)
            if success:
                recorder.success(ns, k == frames - 1)
    return path


def small_export(bags: list[Path], out: Path, *extra: str) -> int:
    topics = fixture.TOPICS
    return export(
        [
            "--bags",
            *map(str, bags),
            "--out",
            str(out),
            "--image-topic",
            topics.image,
            "--extra-camera-topics",
            "--joint-states-topic",
            topics.joint_states,
            "--command-topic",
            topics.trajectory,
            "--success-topic",
            topics.success,
            "--instruction-topic",
            topics.instruction,
            *extra,
        ]
    )


def test_camera_names_come_from_their_topics():
    assert camera_name("/cam/color/image_raw") == "cam_color"
    assert camera_name("camera/image_raw/compressed") == "camera"
    assert camera_name("/wrist_camera/image_rect_color") == "wrist_camera"
    assert camera_name("/front") == "front"


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--image-topic", "/nope", "no camera images on /nope or /nope/compressed"),
        ("--joint-states-topic", "/nope", "no usable joint states on /nope"),
        ("--command-topic", "/nope", "no usable commands on /nope"),
        ("--fps", "30", "Hz, below 30 fps: rows would repeat frames"),
    ],
)
def test_unusable_bags_are_one_line_errors(option, value, message, tmp_path, capsys):
    bags = tmp_path / "bags"
    fixture.write_bags(bags)
    arguments = fixture.export_arguments(bags, tmp_path / "dataset")
    position = arguments.index(option) + 1 if option in arguments else None
    arguments = arguments[:position] + [value] + arguments[position + 1 :] if position else arguments + [option, value]
    assert export(arguments) == 1
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    # Nothing is left behind: no dataset, no half-written scratch copy.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("one frame", "one camera frame gives no rate to export at; pass --fps"),
        ("sizes", "frames of 48x48 after episodes of 32x32; a camera's frames must keep one size"),
        ("damaged", "cannot read bag"),
        ("names", "camera names ['a', 'a'] for the cameras ['/camera/image_raw', '/camera/image_raw']"),
        (
            "late states",
            "/a: no camera frame with a joint state at or before it and a command by the end of its period",
        ),
    ],
)
def test_unusable_recordings_are_one_line_errors(case, message, tmp_path, capsys):
    bags = [
        write_small_bag(
            tmp_path / "a", frames=1 if case == "one frame" else 5, state_lag_s=1.0 if case == "late states" else 0
        )
    ]
    extra = ["--extra-camera-topics", "camera/image_raw", "--camera-names", "a", "a"] if case == "names" else []
    if case == "sizes":
        bags.append(write_small_bag(tmp_path / "b", size=48))
    if case == "damaged":
        (bags[0] / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    assert small_export(bags, tmp_path / "dataset", *extra) == 1
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "dataset").exists() and not list(tmp_path.glob(".dataset.*"))


def test_a_one_frame_episode_exports_at_a_given_fps(tmp_path):
    assert small_export([write_small_bag(tmp_path / "a", frames=1)], tmp_path / "dataset", "--fps", "10") == 0
    (episode,) = read_lerobot_dataset(tmp_path / "dataset", JOINTS)
    assert len(episode.images) == 1 and episode.commands[0, 0] == 0.5 and episode.success


@pytest.mark.parametrize("arguments", [["--fps", "0"], ["--joint-map", "a"]])
def test_malformed_options_are_usage_errors(arguments, tmp_path):
    with pytest.raises(SystemExit) as exit:
        export(["--bags", str(tmp_path), "--out", str(tmp_path / "out"), *arguments])
    assert exit.value.code == 2


def test_a_bag_without_success_messages_among_others_never_succeeds(tmp_path):
    bags = [write_small_bag(tmp_path / "a"), write_small_bag(tmp_path / "b", success=False)]
    assert small_export(bags, tmp_path / "dataset", "--task", "stack", "--codec", "h264") == 0
    info = json.loads((tmp_path / "dataset" / "meta" / "info.json").read_text())
    assert info["features"]["next.success"]["dtype"] == "bool"
    assert info["features"]["observation.images.camera"]["info"]["video.codec"] == "h264"
    episodes = read_lerobot_dataset(tmp_path / "dataset", JOINTS)
    assert [e.success for e in episodes] == [True, False] and [e.instruction for e in episodes] == ["stack"] * 2
    for episode in episodes:
        np.testing.assert_allclose(episode.states[:, 0], range(5))
        np.testing.assert_allclose(episode.commands[:, 0], np.arange(5) + 0.5)
        np.testing.assert_allclose(episode.images.mean(axis=(1, 2, 3)), np.arange(5) * 40, atol=2)


def test_the_writer_refuses_what_lerobot_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="whole number of frames per second"):
        LeRobotWriter(tmp_path / "a", 12.5, JOINTS, ["front"], has_success=False)
    assert not (tmp_path / "a").exists()
    writer = LeRobotWriter(tmp_path / "b", 10, JOINTS, ["front"], has_success=True)
    frames, states = np.zeros((3, 32, 32, 3), np.uint8), np.zeros((3, len(JOINTS)), np.float32)
    with pytest.raises(ValueError, match="1 cameras and 3 rows expected"):
        writer.add_episode([frames, frames], states, states, "task", np.zeros(3, bool))
    with pytest.raises(ValueError, match="next.success missing"):
        writer.add_episode([frames], states, states, "task")
    with pytest.raises(ValueError, match="no episodes to write"):
        writer.close()


def test_an_existing_dataset_is_never_overwritten(tmp_path, capsys):
    bags = tmp_path / "bags"
    fixture.write_bags(bags)
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert export(fixture.export_arguments(bags, out)) == 1
    assert "exists; refusing to overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_files_roll_over_past_their_size_limit(tmp_path):
    """Past the size limits each episode starts new data and video files, as
    lerobot does; the episode table says where each one is."""
    import pyarrow.parquet as pq

    lengths = (60, 60, 60)
    writer = LeRobotWriter(
        tmp_path / "dataset",
        10,
        JOINTS,
        ["front"],
        has_success=False,
        data_files_size_in_mb=1e-6,
        video_files_size_in_mb=1e-6,
    )
    for index, length in enumerate(lengths):
        frames = np.stack([fixture.pattern(index % 2, k % 25, 0) for k in range(length)])
        states = np.full((length, len(JOINTS)), index, np.float32)
        writer.add_episode([frames], states, states + 0.5, "task")
    writer.close()
    root = tmp_path / "dataset"
    table = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [row["data/file_index"] for row in table] == [0, 1, 2]
    assert [row["videos/observation.images.front/file_index"] for row in table] == [0, 1, 2]
    assert [row["videos/observation.images.front/from_timestamp"] for row in table] == [0.0, 0.0, 0.0]
    assert len(list((root / "videos").rglob("*.mp4"))) == 3
    episodes = read_lerobot_dataset(root, JOINTS)
    for index, episode in enumerate(episodes):
        assert episode.states[0, 0] == index and len(episode.images) == lengths[index]
        shown = np.array([square_position(frame, 0) for frame in episode.images])
        np.testing.assert_allclose(shown[:, 1], np.arange(lengths[index]) % 25, atol=0.1)


# ---------------------------------------------------------------- stats as lerobot computes them


def test_stats_are_computed_as_lerobot_computes_them():
    """Against the stats lerobot 0.4.4 itself stored for the v3.0 fixture it
    wrote (test/fixtures/lerobot/v3.0): the same numbers, but for image std,
    which lerobot gets from squared uint8 pixels (0 there)."""
    import pyarrow.parquet as pq

    root = REPO / "test" / "fixtures" / "lerobot" / "v3.0"
    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    stored = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    episode = np.asarray(data["episode_index"])
    ours = []
    for index, stats in enumerate(stored):
        rows = episode == index
        columns = {
            "observation.state": np.asarray(data["observation.state"], np.float32)[rows],
            "action": np.asarray(data["action"], np.float32)[rows],
            "next.success": np.asarray(data["next.success"])[rows][:, None],
            "timestamp": (np.arange(rows.sum()) / 30)[:, None],  # lerobot's float64 frame_index / fps
            "index": np.asarray(data["index"])[rows][:, None],
        }
        computed = {key: feature_stats(values) for key, values in columns.items()}
        # The image camera's frames, as the fixture's writer drew them.
        frames = np.zeros((rows.sum(), 64, 64, 3), np.uint8)
        for frame in range(rows.sum()):
            frames[frame, 4 + 28 * index : 20 + 28 * index, 4 + 2 * frame : 20 + 2 * frame] = 255
        computed["observation.images.wrist"] = image_stats(frames)
        for key, values in computed.items():
            for name, value in values.items():
                if key.startswith("observation.images") and name == "std":
                    assert stats[f"stats/{key}/{name}"] == [[[0.0]]] * 3  # lerobot's uint8 overflow
                    np.testing.assert_allclose(value.reshape(-1), np.sqrt(0.0625 * 0.9375), rtol=1e-9)
                    continue
                np.testing.assert_allclose(
                    np.asarray(value, np.float64),
                    np.asarray(stats[f"stats/{key}/{name}"]),
                    rtol=1e-6,
                    atol=1e-9,
                    err_msg=f"{key}/{name}",
                )
        ours.append(computed)
    totals = json.loads((root / "meta" / "stats.json").read_text())
    for key, values in aggregate_stats(ours).items():
        for name, value in values.items():
            if not (key.startswith("observation.images") and name == "std"):
                np.testing.assert_allclose(
                    np.asarray(value, np.float64),
                    np.asarray(totals[key][name], np.float64),
                    rtol=1e-6,
                    atol=1e-9,
                    err_msg=f"{key}/{name}",
                )


def test_images_are_sampled_and_downsampled_as_lerobot_does():
    # compute_stats.estimate_num_samples' own figures: 100 up to ~500 frames, 177 at 1000, 594 at 5000.
    assert [len(sample_indices(n)) for n in (20, 500, 1000, 5000)] == [20, 105, 177, 594]
    assert sample_indices(1000)[[0, -1]].tolist() == [0, 999]
    # 320 px: every other pixel (int(320 / 150) = 2), here only the black ones.
    frames = np.zeros((4, 320, 320, 3), np.uint8)
    frames[:, :, 1::2] = 255
    stats = image_stats(frames)
    assert stats["count"].tolist() == [4] and stats["max"].reshape(-1).tolist() == [0.0] * 3
    assert image_stats(frames[:, :299, :299])["mean"].reshape(-1) == pytest.approx([149 / 299] * 3)


# ---------------------------------------------------------------- the committed fixture


def assert_close(ours, committed, where=""):
    """Equal values: exactly for strings, integers and booleans, floats to 1e-9."""
    if isinstance(committed, dict):
        assert isinstance(ours, dict) and list(ours) == list(committed), where
        for key in committed:
            assert_close(ours[key], committed[key], f"{where}/{key}")
    elif isinstance(committed, list):
        assert isinstance(ours, list) and len(ours) == len(committed), where
        for i, (a, b) in enumerate(zip(ours, committed)):
            assert_close(a, b, f"{where}[{i}]")
    elif isinstance(committed, float):
        assert ours == pytest.approx(committed, rel=1e-9, abs=1e-12), where
    else:
        assert ours == committed and type(ours) is type(committed), where


def test_a_fresh_export_of_the_fixture_bags_equals_the_committed_dataset(tmp_path):
    import av
    import pyarrow.parquet as pq

    _, out = export_fixture_bags(tmp_path)
    committed = FIXTURE / "dataset"
    ours_files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert ours_files == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    for path in ours_files:
        if path.suffix == ".parquet":
            fresh, kept = pq.read_table(out / path), pq.read_table(committed / path)
            assert fresh.schema.equals(kept.schema, check_metadata=False), path
            metadata = lambda table: {
                k: json.loads(v) for k, v in (table.schema.metadata or {}).items() if k != b"pandas"
            }  # pandas' names the pyarrow that wrote it
            assert metadata(fresh) == metadata(kept), path
            assert_close(fresh.to_pylist(), kept.to_pylist(), str(path))
        elif path.suffix == ".json":
            assert_close(json.loads((out / path).read_text()), json.loads((committed / path).read_text()), str(path))
        else:  # a video: the same frames, though an encoder of another version may differ a little
            decoded = []
            for root in (out, committed):
                with av.open(str(root / path)) as container:
                    decoded.append(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
            assert decoded[0].shape == decoded[1].shape == (sum(fixture.ROWS), 64, 64, 3)
            assert np.abs(decoded[0].astype(int) - decoded[1]).mean() < 1.0, path


def test_lerobot_read_the_committed_dataset_as_the_bags_recorded_it():
    """What lerobot 0.4.4 read from the committed dataset (read_by_lerobot.json,
    scripts/fixtures/read_lerobot_export_fixture.py) against the bags' values."""
    read = json.loads((FIXTURE / "read_by_lerobot.json").read_text())
    assert read["lerobot"] == "0.4.4" and read["codebase_version"] == "v3.0"
    assert "lerobot 0.4.4" in (FIXTURE / "WRITTEN_BY.txt").read_text()
    assert read["num_episodes"] == 2 and read["num_frames"] == sum(fixture.ROWS) and read["fps"] == fixture.FPS
    assert set(read["video_backends"]) == {"torchcodec", "pyav"}  # lerobot's default decoder and its fallback
    assert read["camera_keys"] == CAMERAS and read["robot_type"] == fixture.ROBOT_TYPE
    assert read["tasks"] == {task: index for index, task in enumerate(fixture.TASKS)}
    assert read["features"]["observation.state"]["names"] == JOINTS == read["features"]["action"]["names"]
    expected = [fixture_rows(index) for index in range(2)]
    rows = iter(read["rows"])
    for index, episode in enumerate(expected):
        length = len(episode["states"])
        for k in range(length):
            row = next(rows)
            assert (row["episode_index"], row["frame_index"], row["task"]) == (index, k, episode["task"])
            assert row["index"] == sum(fixture.ROWS[:index]) + k
            assert row["timestamp"] == pytest.approx(k / fixture.FPS, abs=1e-6)
            np.testing.assert_allclose(row["observation.state"], episode["states"][k], atol=1e-4)
            np.testing.assert_allclose(row["action"], episode["actions"][k], atol=1e-4)
            assert row["next.success"] == episode["success"][k]
            # The action chunk a policy gets: the next rows' actions, the last one repeated (padded) at the end.
            steps = np.minimum(np.arange(k, k + 3), length - 1)
            np.testing.assert_allclose(row["action_chunk"], episode["actions"][steps], atol=1e-4)
            assert row["action_chunk_is_pad"] == [k + step >= length for step in range(3)]
            for backend, frames in row["frames"].items():
                for camera, key in enumerate(CAMERAS):
                    x, y = frames[key]["square_xy"]
                    along, across = (x, y) if camera == 0 else (y, x)
                    centre = fixture.SQUARE / 2 - 0.5
                    assert along == pytest.approx(4 + 2 * k + centre, abs=0.2), (backend, key, index, k)
                    assert across == pytest.approx(4 + 24 * index + centre, abs=0.2), (backend, key, index, k)
                    # A white square of 144 px in 4096, and the wrist camera's red stripe: RGB in that order.
                    area = fixture.SQUARE**2 / fixture.SIZE**2
                    stripe = [fixture.STRIPE / fixture.SIZE, 0, 0] if camera else [0, 0, 0]
                    np.testing.assert_allclose(frames[key]["mean"], np.add(area, stripe), atol=0.003)
    assert next(rows, None) is None


def test_our_reader_reads_the_committed_dataset_as_the_bags_recorded_it():
    for index, episode in enumerate(read_lerobot_dataset(FIXTURE / "dataset", JOINTS)):
        expected = fixture_rows(index)
        np.testing.assert_allclose(episode.states, expected["states"], atol=1e-4)
        np.testing.assert_allclose(episode.commands, expected["actions"], atol=1e-4)
        shown = np.array([square_position(frame, 0) for frame in episode.images])
        np.testing.assert_allclose(shown[:, 1], np.arange(len(expected["states"])), atol=0.1)
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 300_000  # the committed fixture stays small
