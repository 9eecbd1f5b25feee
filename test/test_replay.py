"""Offline evaluation: a recorded bag replayed through both node processes."""

import json

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE
from video2act_core.data.samples import find_episode_bags
from video2act_eval.replay import main as replay

pytestmark = pytest.mark.dds


def test_replay_compares_policy_chunks_with_recorded_commands(expert_bags, tiny_checkpoint, tmp_path):
    bag = find_episode_bags([expert_bags])[0]
    # The expert's episode can be under a second: the player holds its clock
    # for System 2's first pass, however long that takes on this machine,
    # and a quarter speed leaves System 1 ticks to spare on a loaded CPU.
    assert (
        replay(
            [
                "--bag",
                str(bag),
                "--checkpoint",
                str(tiny_checkpoint),
                "--params",
                str(PARAMS_FILE),
                "--rate",
                "0.25",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "report.json").read_text())
    # Playback under /clock from the bag: the policy acts and its chunks
    # line up in time with the recorded commands.
    assert report["active_chunks"] > 0 and report["chunks_compared"] > 0
    assert report["chunk_mae"] >= 0 and report["system1_latency_p50_ms"] > 0
    assert report["system2_warmup_wall_s"] >= 0
    # How the chunks join, from the commands the policy reports sending.
    assert report["execution_strategy"] == "rtc"
    assert report["seam_position_jump"] >= 0 and report["setpoint_rms_jerk"] >= 0
    assert 0 < report["system1_chunks_per_s"] <= report["system1_configured_rate_hz"] * 1.2
    assert (tmp_path / "latency.png").stat().st_size > 0


def write_outside_bag(path, seconds=3.0, storage="sqlite3", compressed=True):
    """A robot's bag as another stack writes it (the rosbags writer, not our
    recorder): jpeg CompressedImage on <camera>/compressed (or raw bgr8 on
    <camera>), joints named `<joint>.pos` with an extra joint, in another
    order; sqlite3 or mcap storage."""
    import io

    from PIL import Image
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    T = store.types
    names = [f"{j}.pos" for j in reversed(JOINTS)] + ["camera_tilt"]
    plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[storage]
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        camera = (
            writer.add_connection("/cam/color/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=store)
            if compressed
            else writer.add_connection("/cam/color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        )
        states = writer.add_connection("/arm/joint_states", "sensor_msgs/msg/JointState", typestore=store)
        commands = writer.add_connection(
            "/arm/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", typestore=store
        )

        def header(ns, frame=""):
            return T["std_msgs/msg/Header"](
                stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame
            )

        start = 1_700_000_000 * 10**9
        for step in range(int(seconds * 50)):
            ns = start + step * 20_000_000
            positions = np.append(0.3 * np.sin(step / 50 + np.arange(len(JOINTS)))[::-1], 0.1)
            writer.write(
                states,
                ns,
                store.serialize_cdr(
                    T["sensor_msgs/msg/JointState"](
                        header=header(ns), name=names, position=positions, velocity=np.zeros(0), effort=np.zeros(0)
                    ),
                    states.msgtype,
                ),
            )
            if step % 5 == 0:  # 10 Hz commands
                point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
                    positions=positions[:-1],
                    velocities=np.zeros(0),
                    accelerations=np.zeros(0),
                    effort=np.zeros(0),
                    time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=100_000_000),
                )
                writer.write(
                    commands,
                    ns,
                    store.serialize_cdr(
                        T["trajectory_msgs/msg/JointTrajectory"](
                            header=header(0), joint_names=names[:-1], points=[point]
                        ),
                        commands.msgtype,
                    ),
                )
            if step % 3 == 0:  # ~15 Hz camera
                frame = np.zeros((48, 64, 3), np.uint8)
                frame[:, (step // 3) % 64] = (255, 0, 0)
                if compressed:
                    buffer = io.BytesIO()
                    Image.fromarray(frame).save(buffer, format="JPEG")
                    message = T["sensor_msgs/msg/CompressedImage"](
                        header=header(ns, "cam_optical"),
                        format="bgr8; jpeg compressed bgr8",
                        data=np.frombuffer(buffer.getvalue(), np.uint8),
                    )
                else:
                    message = T["sensor_msgs/msg/Image"](
                        header=header(ns, "cam_optical"),
                        height=48,
                        width=64,
                        encoding="bgr8",
                        is_bigendian=0,
                        step=64 * 3,
                        data=np.ascontiguousarray(frame[..., ::-1]).ravel(),
                    )
                writer.write(camera, ns, store.serialize_cdr(message, camera.msgtype))


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("compressed", [True, False])
def test_outside_bags_read_as_recorded(tmp_path, storage, compressed):
    from video2act_core.data.episode import EpisodeTopics
    from video2act_core.data.joint_names import JointNameMap
    from video2act_core.data.rosbag import read_episode

    write_outside_bag(tmp_path / "bag", storage=storage, compressed=compressed)
    topics = EpisodeTopics("/cam/color/image_raw", "/arm/joint_states", "/arm/joint_trajectory", "/success")
    episode = read_episode(tmp_path / "bag", topics, JOINTS, joint_name_map=JointNameMap(strip_suffix=".pos"))
    assert episode.images.shape == (50, 48, 64, 3) and episode.states.shape == (150, len(JOINTS))
    # The red column is where the frame index puts it, in RGB, whatever the encoding.
    red = episode.images[1, 10, :, 0].astype(int) - episode.images[1, 10, :, 2]
    assert red[1] > 50 and abs(red[30]) < 10  # jpeg smears colour over a pixel or two
    # The recorded joints, renamed and reordered into ours.
    np.testing.assert_allclose(episode.states[0], 0.3 * np.sin(np.arange(len(JOINTS))), atol=1e-12)


OUTSIDE_TOPICS = [
    "--image-topic",
    "/cam/color/image_raw",
    "--joint-states-topic",
    "/arm/joint_states",
    "--command-topic",
    "/arm/joint_trajectory",
    "--strip-joint-suffix",
    ".pos",
]


def test_an_outside_robot_bag_with_compressed_images_replays(tiny_checkpoint, tmp_path):
    write_outside_bag(tmp_path / "bag")
    assert (
        replay(
            [
                "--bag",
                str(tmp_path / "bag"),
                "--checkpoint",
                str(tiny_checkpoint),
                "--params",
                str(PARAMS_FILE),
                "--rate",
                "0.25",
                "--out",
                str(tmp_path / "out"),
                "--overlay-video",
                *OUTSIDE_TOPICS,
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["camera_type"] == "sensor_msgs/msg/CompressedImage"
    assert report["active_chunks"] > 0 and report["chunks_compared"] > 0
    assert report["modes"]["active"] == report["active_chunks"]
    # Its own graph: a domain of its own, restored for the caller afterwards.
    assert report["ros_domain_id"] is not None
    import av

    with av.open(str(tmp_path / "out" / "overlay.mp4")) as video:  # what System 2 saw, at the camera's size
        frames = [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]
    assert frames and frames[0].shape == (48, 64, 3)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ["--image-topic", "/wrong"],
            "no camera images on /wrong or /wrong/compressed; image topics in the bag: "
            "/cam/color/image_raw/compressed (CompressedImage)",
        ),
        (["--strip-joint-suffix", ""], "no usable joint states on /arm/joint_states (150 x /arm/joint_states: "),
        (["--checkpoint", "/nonexistent"], "/nonexistent"),
    ],
)
def test_a_users_mistake_is_one_line_and_a_nonzero_exit(tmp_path, capsys, change, message):
    write_outside_bag(tmp_path / "bag", seconds=3.0)
    argv = [
        "--bag",
        str(tmp_path / "bag"),
        "--params",
        str(PARAMS_FILE),
        "--out",
        str(tmp_path / "out"),
        *OUTSIDE_TOPICS,
        *change,
    ]
    assert replay(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("replay: error: ") and message in error and "Traceback" not in error
    assert error.count("\n") == 1
