"""The perception node with a second camera, over real DDS: image tokens of
both cameras in every update, with their frames' stamps; a silent wrist
camera stops the updates (and says so on /diagnostics) instead of passing
stale tokens on; a checkpoint and params that disagree on the cameras
refuse to start."""

import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

from conftest import JOINTS, PARAMS_FILE, tiny_model_config
from video2act_core.checkpoint import init_checkpoint
from video2act_core.data.images import encode_rgb8
from video2act_core.messages import latents_from_message, stamp_to_ns
from video2act_core.params import PerceptionParams, node_params
from video2act_core.ros import latents_qos
from video2act_eval.launcher import PERCEPTION, start_node, stop_nodes
from video2act_msgs.msg import SpatioMotionLatents

pytestmark = pytest.mark.dds

TOPICS = node_params(PerceptionParams, PARAMS_FILE, "video2act_perception")
WRIST_TOPIC = "wrist_camera/image_raw"
VIEWS = {"view_cameras": 2, "view_history": 2, "view_spacing_s": 0.2, "view_grid": 4}
FPS = 15.0


@pytest.fixture(scope="module")
def two_camera_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoints") / "two_cameras"
    init_checkpoint(path, tiny_model_config(**VIEWS), JOINTS)
    return path


class Cameras:
    def __init__(self):
        self.node = rclpy.create_node("video2act_two_cameras")
        reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        self.publishers = [
            self.node.create_publisher(Image, topic, reliable) for topic in (TOPICS.image_topic, WRIST_TOPIC)
        ]
        self.latents, self.diagnostics = [], []
        self.node.create_subscription(SpatioMotionLatents, TOPICS.latents_topic, self.latents.append, latents_qos())
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.sent = ([], [])  # stamps sent per camera

    def run(self, seconds: float, cameras: tuple[int, ...]) -> None:
        """Frames at FPS on the given cameras for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stamp = self.node.get_clock().now()
            for camera in cameras:
                frame = np.full((64, 64, 3), 60 + 100 * camera, np.uint8)
                msg = Image(encoding="rgb8")
                msg.header.stamp = stamp.to_msg()
                msg.height, msg.width, msg.step, msg.data = encode_rgb8(frame)
                self.publishers[camera].publish(msg)
                self.sent[camera].append(stamp.nanoseconds)
            deadline = time.monotonic() + 1.0 / FPS
            while time.monotonic() < deadline:
                rclpy.spin_once(self.node, timeout_sec=0.01)


def test_every_update_carries_both_cameras_and_a_silent_camera_stops_them(two_camera_checkpoint, tmp_path):
    log = open(tmp_path / "perception.log", "w")
    process = start_node(
        PERCEPTION,
        PARAMS_FILE,
        {
            "checkpoint_path": str(two_camera_checkpoint),
            "device": "cpu",
            "rate_hz": 4.0,
            "image_qos": "reliable",
            "extra_camera_topics": [WRIST_TOPIC],
            "max_frame_age_s": 1.0,
            "diagnostics_rate_hz": 4.0,
        },
        log,
    )
    cameras = None
    try:
        rclpy.init()
        cameras = Cameras()
        cameras.run(12.0, cameras=(0, 1))
        assert cameras.latents, "no latents from two cameras"
        for msg in cameras.latents:
            latents = latents_from_message(msg).latents
            assert latents.views.shape == (2 * 2 * 16, latents.spatial.shape[1])
            image_stamps = [stamp_to_ns(s) for s in msg.image_stamps]
            assert len(image_stamps) == 4
            overhead, wrist = image_stamps[:2], image_stamps[2:]
            # Each camera's frames oldest first, about 0.2 s apart, the video
            # camera's newest the update's own stamp.
            assert overhead[-1] == stamp_to_ns(msg.header.stamp)
            for frames, sent in ((overhead, cameras.sent[0]), (wrist, cameras.sent[1])):
                assert set(frames) <= set(sent)
                assert 0.1 <= (frames[1] - frames[0]) * 1e-9 <= 0.3
            assert wrist[-1] <= overhead[-1]

        # The wrist camera goes silent: the updates stop and /diagnostics says why.
        cameras.run(3.0, cameras=(0,))  # past max_frame_age_s, and an update under way finishes
        cameras.latents.clear(), cameras.diagnostics.clear()
        cameras.run(3.0, cameras=(0,))
        assert cameras.latents == []
        messages = [status.message for array in cameras.diagnostics for status in array.status]
        assert any(f"camera {WRIST_TOPIC} stalled" in message for message in messages), messages

        # It comes back: so do the updates.
        cameras.run(4.0, cameras=(0, 1))
        assert cameras.latents
    finally:
        codes = stop_nodes([process])
        if cameras is not None:
            cameras.node.destroy_node()
        rclpy.try_shutdown()
        log.close()
    assert codes == [0], (tmp_path / "perception.log").read_text()[-2000:]


def test_a_checkpoint_reading_more_cameras_than_the_params_name_refuses_to_start(two_camera_checkpoint, tmp_path):
    log_file = tmp_path / "perception.log"
    with open(log_file, "w") as log:
        process = start_node(
            PERCEPTION, PARAMS_FILE, {"checkpoint_path": str(two_camera_checkpoint), "device": "cpu"}, log
        )
        code = process.wait(timeout=120)
        stop_nodes([process])
    assert code == 1
    assert "image tokens from 2 camera(s) (image_topic first); extra_camera_topics names 0" in log_file.read_text()
