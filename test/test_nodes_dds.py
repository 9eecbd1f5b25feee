"""The nodes as separate processes over real DDS, fed by this test's node."""

import time

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE

rclpy = pytest.importorskip("rclpy")

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402
from video2act_msgs.msg import ActionChunk, SpatioMotionLatents  # noqa: E402

from video2act_core.frames import encode_rgb8  # noqa: E402
from video2act_core.messages import stamp_to_ns, stamp_to_seconds  # noqa: E402
from video2act_core.params import PolicyParams, node_params  # noqa: E402
from video2act_core.ros import latents_qos  # noqa: E402
from video2act_sim.launcher import PERCEPTION, POLICY, start_node, stop_nodes  # noqa: E402

PARAMS = node_params(PolicyParams, PARAMS_FILE, "video2act_policy")
# Generous: System 2 runs ~1 Hz with ~1 s latency on a loaded 2-core machine.
MAX_LATENTS_AGE_S = 5.0


class Harness:
    """Publishes camera frames and joint states; records what comes back."""

    def __init__(self):
        self.node = rclpy.create_node("video2act_test_harness")
        self.image_pub = self.node.create_publisher(Image, PARAMS.image_topic, qos_profile_sensor_data)
        self.joint_pub = self.node.create_publisher(JointState, PARAMS.joint_states_topic, 10)
        self.latents, self.trajectories, self.chunks = [], [], []
        self.sent_image_stamps = []
        self.node.create_subscription(SpatioMotionLatents, PARAMS.latents_topic, self.latents.append, latents_qos())
        self.node.create_subscription(JointTrajectory, PARAMS.trajectory_topic, self.trajectories.append, 10)
        self.node.create_subscription(ActionChunk, PARAMS.action_chunk_topic, self.chunks.append, 10)
        self.frame_index = 0

    def now(self):
        return self.node.get_clock().now()

    def send_image(self, encoding="rgb8"):
        frame = np.full((64, 64, 3), 80, np.uint8)
        left = 4 + (self.frame_index * 3) % 48
        frame[24:40, left : left + 12] = 230
        self.frame_index += 1
        msg = Image(encoding=encoding)
        msg.header.stamp = self.now().to_msg()
        msg.height, msg.width, msg.step, msg.data = encode_rgb8(frame)
        self.image_pub.publish(msg)
        self.sent_image_stamps.append(stamp_to_ns(msg.header.stamp))

    def send_joint_state(self, names=JOINTS, position=0.1):
        msg = JointState(name=list(names), position=[position] * len(names))
        msg.header.stamp = self.now().to_msg()
        self.joint_pub.publish(msg)

    def run(self, seconds, image_encoding="rgb8", joint_names=JOINTS, joint_position=0.1, images=True):
        """Camera at 15 Hz and joint states at 50 Hz for `seconds`."""
        end = time.monotonic() + seconds
        next_image = next_joint = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if images and now >= next_image:
                self.send_image(image_encoding)
                next_image += 1 / 15
            if now >= next_joint:
                self.send_joint_state(joint_names, joint_position)
                next_joint += 1 / 50
            rclpy.spin_once(self.node, timeout_sec=0.005)

    def clear(self):
        self.latents.clear(), self.trajectories.clear(), self.chunks.clear()


@pytest.fixture(scope="module")
def stack(tiny_checkpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    overrides = {"checkpoint_path": str(tiny_checkpoint), "device": "cpu", "max_latents_age_s": MAX_LATENTS_AGE_S}
    files = [open(logs / f"{exe.name}.log", "w") for exe in (PERCEPTION, POLICY)]
    processes = [start_node(exe, PARAMS_FILE, overrides, log) for exe, log in zip((PERCEPTION, POLICY), files)]
    rclpy.init()
    harness = Harness()
    yield harness, processes, logs
    codes = stop_nodes(processes)
    harness.node.destroy_node()
    rclpy.try_shutdown()
    for f in files:
        f.close()
    assert all(code in (0, -2) for code in codes), (codes, [p.read_text()[-2000:] for p in logs.iterdir()])


def wait_ready(harness, processes, logs, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not (harness.latents and harness.trajectories):
        harness.run(0.5)
        assert all(p.poll() is None for p in processes), [p.read_text()[-2000:] for p in logs.iterdir()]
    assert harness.latents and harness.trajectories, [p.read_text()[-2000:] for p in logs.iterdir()]


def test_latents_and_trajectories_flow_with_right_shapes_stamps_and_rates(stack, tiny_checkpoint):
    harness, processes, logs = stack
    wait_ready(harness, processes, logs)
    harness.clear()
    started = time.monotonic()
    harness.run(8.0)
    elapsed = time.monotonic() - started

    from video2act_core.checkpoint import read_manifest

    manifest = read_manifest(tiny_checkpoint)
    sent = set(harness.sent_image_stamps)
    assert len(harness.latents) >= 2
    for msg in harness.latents:
        assert msg.model_id == manifest.model_id
        assert tuple(msg.spatial_shape) == (manifest.vdm.token_grid**2, manifest.vdm.token_dim)
        assert tuple(msg.motion_shape) == tuple(msg.spatial_shape)
        assert len(msg.spatial_tokens) == np.prod(msg.spatial_shape)
        assert np.all(np.isfinite(msg.motion_tokens))
        stamps = [stamp_to_ns(s) for s in msg.frame_stamps]
        assert len(stamps) == manifest.vdm.num_frames and stamps == sorted(stamps)
        assert stamp_to_ns(msg.header.stamp) == stamps[-1]
        assert all(s in sent for s in stamps)  # stamps are capture times, not publish times
        assert msg.motion_energy > 0  # the square moves
    sequences = [m.sequence for m in harness.latents]
    assert sequences == sorted(sequences)

    holds = [c.reason for c in harness.chunks if c.mode != ActionChunk.MODE_ACTIVE]
    assert not holds, holds
    assert harness.trajectories
    for msg in harness.trajectories:
        assert list(msg.joint_names) == JOINTS
        assert len(msg.points) == manifest.dit.horizon
        times = [stamp_to_seconds(p.time_from_start) for p in msg.points]
        np.testing.assert_allclose(np.diff(times), PARAMS.action_period_s, atol=1e-6)
        assert all(len(p.positions) == len(JOINTS) and np.all(np.isfinite(p.positions)) for p in msg.points)

    # Bounds loose enough for a loaded 2-core CI machine: the CPU model runs
    # System 2 at ~1 Hz here, System 1 near its 10 Hz timer.
    latents_rate = len(harness.latents) / elapsed
    trajectory_rate = len(harness.trajectories) / elapsed
    print(f"measured: latents {latents_rate:.2f} Hz, trajectories {trajectory_rate:.2f} Hz")
    assert 0.2 <= latents_rate <= 1.5 * 2.0
    assert 2.0 <= trajectory_rate <= 1.5 * PARAMS.rate_hz
    active = [c for c in harness.chunks if c.mode == ActionChunk.MODE_ACTIVE]
    assert active and all(0 <= c.latents_age < MAX_LATENTS_AGE_S for c in active)


def test_bad_inputs_make_the_policy_hold_and_nothing_crashes(stack):
    harness, processes, logs = stack
    wait_ready(harness, processes, logs)

    # Joint states without our joints: the policy holds, says why, and sends
    # one stop trajectory at the last good position, then nothing.
    harness.clear()
    harness.run(2.0, joint_names=["a", "b"])
    holds = [c for c in harness.chunks if c.mode == ActionChunk.MODE_HOLD]
    assert holds and "joint state" in holds[-1].reason
    # Until the last good state is max_joint_state_age_s old the policy may
    # still act on it; after that only the one-point stop trajectory.
    late = [t for t in harness.trajectories if len(t.points) != 1]
    assert len(late) <= PARAMS.rate_hz * PARAMS.max_joint_state_age_s + 2
    assert len(harness.trajectories[-1].points) == 1

    # NaN joint positions are refused the same way.
    harness.clear()
    harness.run(1.5, joint_position=float("nan"))
    assert harness.chunks and harness.chunks[-1].mode == ActionChunk.MODE_HOLD

    # Images in an unsupported encoding: perception publishes nothing new,
    # the latents go stale and the policy holds.
    harness.clear()
    harness.run(MAX_LATENTS_AGE_S + 1.5, image_encoding="32FC1")
    assert harness.chunks[-1].mode == ActionChunk.MODE_HOLD
    assert "latents are" in harness.chunks[-1].reason

    # Good inputs again: the loop recovers by itself.
    harness.clear()
    harness.run(6.0)
    assert harness.chunks[-1].mode == ActionChunk.MODE_ACTIVE
    assert all(p.poll() is None for p in processes)
