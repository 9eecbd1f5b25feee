"""video2act_perception: camera frames -> System 2 spatio-motion latents."""

from __future__ import annotations

from video2act_core.process import guard_process_start

# First, before the imports below load torch for seconds: the process dies
# with its launcher, and a Ctrl-C meanwhile ends it at once.
guard_process_start()

import math
import sys

import numpy as np
import rclpy.time
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Empty, String

from video2act_core.bringup import PERCEPTION
from video2act_core.camera_pose import CameraPose, pose_mismatch
from video2act_core.checkpoint import load_system2, read_manifest
from video2act_core.clock_offset import ClockOffsets, age_at_arrival
from video2act_core.data.frames import CameraInputs, ViewSpec
from video2act_core.data.images import COMPRESSED_SUFFIX, ImageDecodeError, decode_image_message, encode_rgb8
from video2act_core.devices import limit_cpu_threads
from video2act_core.messages import fill_latents_message, ns_to_stamp, stamp_to_ns
from video2act_core.metrics import RecentStats
from video2act_core.params import PerceptionParams
from video2act_core.ros import ModelNode, declare_params, latched_qos, latents_qos, resolve_resource, run_node
from video2act_core.systems import EncodeCancelled
from video2act_core.visualize import overlay
from video2act_msgs.msg import SpatioMotionLatents


def cv_bridge():
    """ROS 2's cv_bridge where installed (the Docker image), else None: the
    PyPI wheels have none."""
    try:
        from cv_bridge import CvBridge

        return CvBridge()
    except Exception:  # absent, or PyPI's cv-bridge, ROS 1 code that does not import
        return None


class PerceptionNode(ModelNode):
    def __init__(self):
        super().__init__(PERCEPTION.node)
        self.params = params = declare_params(self, PerceptionParams)
        checkpoint = resolve_resource(params.checkpoint_path)
        limit_cpu_threads(params.torch_threads)
        self.system2 = load_system2(checkpoint, params.device, params.dtype, warn=self.get_logger().warning)
        config = self.system2.config
        if config.view_cameras and config.view_cameras != 1 + len(params.extra_camera_topics):
            raise ValueError(
                f"the checkpoint makes image tokens from {config.view_cameras} camera(s) (image_topic "
                f"first); extra_camera_topics names {len(params.extra_camera_topics)}: "
                f"{params.extra_camera_topics}"
            )
        self.camera_frame_id = ""
        self.sequence = 0
        self.stats = RecentStats()
        self.bridge = cv_bridge()
        self.dropped_images = 0
        self.clocks = ClockOffsets()
        self.last_problem = ""
        self.camera_pose_status, self.camera_moved = "", False
        self.start_camera_pose_check(checkpoint)

        image_qos = (
            qos_profile_sensor_data
            if params.image_qos == "sensor_data"
            else QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
        )
        compressed = params.image_transport == "compressed"
        message_type = CompressedImage if compressed else Image
        cameras = [params.image_topic, *(params.extra_camera_topics if config.view_cameras else [])]
        self.camera_topics = [topic.rstrip("/") + COMPRESSED_SUFFIX if compressed else topic for topic in cameras]
        self.image_topic = self.camera_topics[0]
        self.cameras = CameraInputs(config.num_frames, params.frame_stride, ViewSpec.of(config), self.camera_topics)
        for camera, topic in enumerate(self.camera_topics):
            self.create_subscription(
                message_type, topic, lambda msg, camera=camera: self.on_image(msg, camera), image_qos
            )
        if params.extra_camera_topics and not config.view_cameras:
            self.get_logger().warning(
                f"extra_camera_topics {params.extra_camera_topics} ignored: the checkpoint makes no image tokens"
            )
        self.create_subscription(Empty, params.reset_topic, self.on_reset, 10)
        # Counts resets; an encode begun in an earlier episode stops part-way.
        self.episode = 0
        self.reset_ns = 0
        self.awaiting_first_clip = False
        self.stopping = False
        self.cancelled_encodes = 0
        self.instruction = ""
        if self.system2.needs_instruction:
            latched = latched_qos()
            self.create_subscription(String, params.instruction_topic, self.on_instruction, latched)
        self.publisher = self.create_publisher(SpatioMotionLatents, params.latents_topic, latents_qos())
        # Reliable writers match best-effort viewers and recorders that want every frame.
        self.debug_publisher = (
            self.create_publisher(
                Image, params.debug_image_topic, QoSProfile(depth=2, reliability=QoSReliabilityPolicy.RELIABLE)
            )
            if params.debug_image_topic
            else None
        )
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / params.diagnostics_rate_hz, self.publish_diagnostics)
        self.model_thread = self.start_model_thread(1.0 / params.rate_hz, self.encode_and_publish, "System 2")
        self.get_logger().info(
            f"System 2 '{self.system2.model_id}' from {checkpoint}: {self.system2.config.num_frames} frames "
            f"from {self.image_topic} -> {params.latents_topic} at {params.rate_hz} Hz"
            + (f"; image tokens from {', '.join(self.camera_topics)}" if config.view_cameras else "")
        )

    def start_camera_pose_check(self, checkpoint) -> None:
        """Compare the camera's pose in tf with the demonstrations' (in the
        checkpoint), retrying until the tree has it or the timeout passes."""
        recorded = read_manifest(checkpoint, verify=False).metadata.get("camera_pose")
        if not recorded:
            self.camera_pose_status = "not checked: the checkpoint records no camera pose"
            return
        try:
            import tf2_ros
        except ImportError:  # the PyPI wheels have no tf2; a ROS 2 install does
            self.camera_pose_status = "not checked: tf2_ros is not installed here"
            self.get_logger().info(f"camera pose {self.camera_pose_status}")
            return
        self.expected_camera_pose = CameraPose.from_dict(recorded)
        self.tf_buffer = tf2_ros.Buffer()
        self.tf_listener = tf2_ros.TransformListener(self.tf_buffer, self)
        self.tf_error = tf2_ros.TransformException
        self.camera_pose_status = f"looking up {self.params.base_frame} -> {self.params.camera_frame} in tf"
        self.camera_pose_deadline_ns = self.now_ns() + int(self.params.camera_pose_timeout_s * 1e9)
        self.camera_pose_timer = self.create_timer(0.5, self.check_camera_pose)

    def check_camera_pose(self) -> None:
        try:
            transform = self.tf_buffer.lookup_transform(
                self.params.base_frame, self.params.camera_frame, rclpy.time.Time()
            )
        except self.tf_error as error:
            if self.now_ns() > self.camera_pose_deadline_ns:
                self.camera_pose_timer.cancel()
                self.camera_pose_status = f"not checked: no transform in tf ({error})"
                self.get_logger().warning(f"camera pose {self.camera_pose_status}")
            return
        self.camera_pose_timer.cancel()
        problem = pose_mismatch(
            self.expected_camera_pose,
            CameraPose.from_transform_stamped(transform),
            self.params.camera_pose_tolerance_m,
            math.radians(self.params.camera_pose_tolerance_deg),
        )
        self.camera_moved = problem is not None
        self.camera_pose_status = problem or "as in the demonstrations"
        if problem:
            self.get_logger().warning(f"{problem}: the policy sees a scene it was not trained on")
        else:
            self.get_logger().info("camera pose matches the checkpoint's")

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def decode(self, msg: Image | CompressedImage):
        """(H, W, 3) uint8 RGB: a raw image by cv_bridge where a ROS 2 install
        has it (it knows every encoding), else by the built-in decoder."""
        if self.bridge is not None and isinstance(msg, Image):
            try:
                return self.bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
            except Exception:  # an encoding cv_bridge refuses: the built-in decoder says why
                pass
        return decode_image_message(msg)

    def on_image(self, msg: Image | CompressedImage, camera: int = 0) -> None:
        try:
            frame = self.decode(msg)
        except ImageDecodeError as error:
            return self.drop_image(str(error), camera)
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp > 0:
            self.clocks.record(self.camera_topics[camera], self.now_ns() * 1e-9, stamp * 1e-9)
        lead = (stamp - self.now_ns()) * 1e-9
        if lead > self.params.max_stamp_lead_s:
            return self.drop_image(f"stamped {lead:.2f} s in the future", camera)
        if 0 < stamp < self.reset_ns:
            return  # captured before the last reset: the last episode's (the policy would refuse its latents)
        # Some drivers leave the stamp empty; receipt time is the best guess.
        self.cameras.push(camera, stamp if stamp > 0 else self.now_ns(), frame)
        if camera == 0:
            self.camera_frame_id = msg.header.frame_id
        if self.awaiting_first_clip:
            # The episode's first latents as soon as every camera has a frame, not a period later.
            self.model_thread.tick()

    def drop_image(self, problem: str, camera: int) -> None:
        self.dropped_images += 1
        self.last_problem = f"dropping image on {self.camera_topics[camera]}: {problem}"
        self.get_logger().error(self.last_problem, throttle_duration_sec=5.0)

    def on_instruction(self, msg: String) -> None:
        # The video model's context; the model thread picks it up at its next update.
        text = msg.data.strip()
        if text != self.instruction:
            self.get_logger().info(f"task instruction for the video model: '{text}'")
            self.instruction = text

    def on_reset(self, _msg: Empty) -> None:
        # A clip must not span two episodes: start filling a new one, and
        # stop encoding the last episode's (the policy would refuse it).
        self.reset_ns = self.now_ns()
        self.cameras.clear()
        self.episode += 1  # after the clear: a pass that read the old clip is one of the old episode
        self.awaiting_first_clip = True

    def encode_and_publish(self) -> None:
        episode = self.episode
        clip, views, problem = self.cameras.read(self.params.max_frame_age_s)
        if clip is None:
            self.last_problem = problem
            self.get_logger().info(problem, throttle_duration_sec=5.0)
            return
        self.awaiting_first_clip = False
        newest = clip.stamps_ns[-1]
        age = (self.now_ns() - newest) * 1e-9
        if age > self.params.max_frame_age_s:
            self.last_problem = (
                f"camera stalled: newest frame is {age:.2f} s old (max {self.params.max_frame_age_s}); "
                "not publishing stale latents"
            )
            self.get_logger().warning(self.last_problem, throttle_duration_sec=5.0)
            return
        try:
            latents = self.system2.encode(
                clip.frames,
                [view.frames for view in views] if views else None,
                self.instruction,
                cancelled=lambda: self.episode != episode or self.stopping,
            )
        except EncodeCancelled:
            self.cancelled_encodes += 1
            return
        except Exception as error:  # keep serving: the policy holds on stale latents
            self.last_problem = f"System 2 failed on a clip: {error}"
            self.get_logger().error(self.last_problem, throttle_duration_sec=5.0)
            return

        msg = SpatioMotionLatents()
        ns_to_stamp(newest, msg.header.stamp)
        msg.header.frame_id = self.camera_frame_id
        msg.frame_stamps = [ns_to_stamp(s, Time()) for s in clip.stamps_ns]
        msg.image_stamps = [ns_to_stamp(s, Time()) for view in views for s in view.stamps_ns]
        fill_latents_message(msg, latents, self.system2.model_id, self.sequence)
        msg.latency = (self.now_ns() - newest) * 1e-9
        self.publisher.publish(msg)
        if self.debug_publisher is not None:
            self.publish_debug_image(msg.header, clip.frames[-1], latents)
        self.check_clip_spacing(clip.stamps_ns)
        self.sequence += 1
        self.stats.record(latency=msg.latency)
        self.last_problem = ""

    def publish_debug_image(self, header, frame, latents) -> None:
        image = Image(header=header, encoding="rgb8")
        image.height, image.width, image.step, image.data = encode_rgb8(
            overlay(frame, latents.boundary_map, latents.motion_map)
        )
        self.debug_publisher.publish(image)

    def check_clip_spacing(self, stamps_ns: list[int]) -> None:
        """The motion band is in Hz of frames `1 / motion_fps` apart: a camera
        rate or frame_stride that spaces them otherwise shifts every band."""
        spacing = float(np.median(np.diff(stamps_ns))) * 1e-9
        expected = 1.0 / self.system2.config.motion_fps
        if spacing > 0 and abs(spacing / expected - 1.0) > 0.25:
            self.get_logger().warning(
                f"clip frames are {spacing * 1e3:.0f} ms apart, the model expects {expected * 1e3:.0f} ms "
                f"(motion_fps {self.system2.config.motion_fps:g}): set frame_stride so camera rate / frame_stride "
                "matches it",
                throttle_duration_sec=30.0,
            )

    def destroy_node(self):
        # Latents of a pass still running would go nowhere: it stops within a
        # block instead of holding the shutdown for the rest of a pass.
        self.stopping = True
        return super().destroy_node()

    def publish_diagnostics(self) -> None:
        clocks = [
            self.clocks.problem(topic, self.params.max_stamp_lead_s, self.params.max_frame_age_s)
            for topic in self.camera_topics
        ]
        problem = "; ".join(
            text
            for text in [self.last_problem or (self.camera_pose_status if self.camera_moved else ""), *clocks]
            if text
        )
        level = DiagnosticStatus.WARN if problem else DiagnosticStatus.OK
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: System 2",
            hardware_id=self.params.checkpoint_path,
            message=problem or "OK",
        )
        p50, p99 = self.stats.percentiles_ms("latency")
        values = {
            "latents per s": f"{self.stats.rate_hz():.2f} (configured {self.params.rate_hz} Hz)",
            "frame-to-latents latency p50 / p99 ms": f"{p50:.0f} / {p99:.0f}",
            "images dropped": self.dropped_images,
            "encodes stopped by a reset": self.cancelled_encodes,
            "sequence": self.sequence,
            "camera pose": self.camera_pose_status,
            **age_at_arrival(self.clocks),
        }
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_publisher.publish(array)


def main(args=None) -> int:
    return run_node(PerceptionNode, PERCEPTION.node, args)


if __name__ == "__main__":
    sys.exit(main())
