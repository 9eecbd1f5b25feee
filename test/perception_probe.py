"""A camera for the perception node over DDS: publishes clips, returns the
tokens the node made of exactly those frames."""

import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

from clips import FPS
from conftest import PARAMS_FILE
from video2act_core.data.images import encode_rgb8
from video2act_core.messages import latents_from_message, stamp_to_ns
from video2act_core.params import PerceptionParams, node_params
from video2act_core.ros import latents_qos
from video2act_eval.launcher import PERCEPTION, start_node
from video2act_msgs.msg import SpatioMotionLatents

TOPICS = node_params(PerceptionParams, PARAMS_FILE, "video2act_perception")
MAX_FRAME_AGE_S = 60.0  # the parameter's highest: clips wait while the node encodes earlier ones


class Camera:
    """Publishes a clip's frames with capture stamps 1/FPS apart and waits
    for the latents made from exactly those frames."""

    def __init__(self):
        self.node = rclpy.create_node("video2act_token_probe")
        reliable = QoSProfile(depth=64, reliability=QoSReliabilityPolicy.RELIABLE)
        self.images = self.node.create_publisher(Image, TOPICS.image_topic, reliable)
        self.received = []
        self.node.create_subscription(SpatioMotionLatents, TOPICS.latents_topic, self.received.append, latents_qos())

    def ready(self, timeout_s: float = 60.0) -> None:
        end = time.monotonic() + timeout_s
        while self.node.count_subscribers(TOPICS.image_topic) == 0 and time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        time.sleep(0.5)  # discovery both ways

    def tokens(self, clip: np.ndarray, attempts: int = 4):
        """(spatial, motion) token arrays of the update made from `clip`. On
        a loaded machine the node may reach the clip only after its newest
        frame is older than max_frame_age_s, and skip it as stale: then the
        clip is published again with fresh stamps."""
        for _ in range(attempts):
            stamps = self._publish(clip)
            end = time.monotonic() + MAX_FRAME_AGE_S
            while time.monotonic() < end:
                for msg in self.received:
                    if [stamp_to_ns(s) for s in msg.frame_stamps] == stamps:
                        latents = latents_from_message(msg).latents
                        self.received.clear()
                        return latents.spatial, latents.motion
                rclpy.spin_once(self.node, timeout_sec=0.05)
        raise AssertionError(f"no latents from the published clip in {attempts} attempts")

    def _publish(self, clip: np.ndarray) -> list[int]:
        now = self.node.get_clock().now().nanoseconds
        stamps = [now - int((len(clip) - 1 - i) * 1e9 / FPS) for i in range(len(clip))]
        for stamp, frame in zip(stamps, clip):
            msg = Image(encoding="rgb8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.height, msg.width, msg.step, msg.data = encode_rgb8(frame)
            self.images.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=0.01)
        return stamps


def start_perception(checkpoint, log):
    # Updates often, so each clip is encoded soon after its last frame.
    overrides = {
        "checkpoint_path": str(checkpoint),
        "device": "cpu",
        "rate_hz": 5.0,
        "image_qos": "reliable",
        "max_frame_age_s": MAX_FRAME_AGE_S,
    }
    return start_node(PERCEPTION, PARAMS_FILE, overrides, log)
