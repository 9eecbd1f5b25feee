"""A test node that feeds the stack camera frames and joint states over real
DDS (optionally as the simulator owning /clock) and records its outputs.
By default it is an SO-101 (config/robots/so101.yaml) whose two
joint_trajectory_controllers (test/jtc.py, written from ros2_controllers'
source) execute what the policy sends, each judging every trajectory by
JTC's acceptance rules, and whose joints follow their setpoints exactly;
given a position instead, the arm stands there and follows nothing."""

import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from builtin_interfaces.msg import Duration
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Empty
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from conftest import JOINTS, PARAMS_FILE, REPO
from jtc import Jtc
from video2act_core.control import JointCommand, JointLimits, envelope_violations
from video2act_core.control.watchdog import NOT_FOLLOWING_HINT
from video2act_core.data.images import encode_rgb8
from video2act_core.messages import stamp_to_ns
from video2act_core.params import PolicyParams, node_params
from video2act_core.ros import latents_qos
from video2act_eval.launcher import PERCEPTION, POLICY, start_node, stop_nodes
from video2act_msgs.msg import ActionChunk, SpatioMotionLatents

# The stack as bringup's default robot profile has it: the SO-101's arm and gripper controllers.
PARAMS_FILES = [PARAMS_FILE, REPO / "config" / "robots" / "so101.yaml"]
PARAMS = node_params(PolicyParams, PARAMS_FILES, "video2act_policy")
LIMITS = JointLimits.from_lists(
    PARAMS.joint_names, PARAMS.joint_lower_limits, PARAMS.joint_upper_limits, PARAMS.max_joint_velocity
)


def trajectory_controllers(path) -> dict[str, dict]:
    """name -> (joints, validation settings) of each joint_trajectory_controller a
    ros2_control YAML loads: the judges' own reading, not the policy's params."""
    document = yaml.safe_load(Path(path).read_text())
    loaded = document["controller_manager"]["ros__parameters"]
    controllers = {}
    for name, spec in loaded.items():
        if isinstance(spec, dict) and spec.get("type", "").endswith("JointTrajectoryController"):
            params = document[name]["ros__parameters"]
            controllers[name] = {
                "joints": params["joints"],
                "validation": {
                    "allow_partial_joints_goal": params.get("allow_partial_joints_goal", False),
                    "allow_nonzero_velocity_at_trajectory_end": params.get(
                        "allow_nonzero_velocity_at_trajectory_end", False
                    ),
                },
            }
    return controllers


CONTROLLERS = trajectory_controllers(REPO / "config" / "robots" / "so101_controllers.yaml")
ARM_JOINTS = CONTROLLERS["arm_controller"]["joints"]
# Generous: System 2 runs ~1 Hz with ~1 s latency on a loaded 2-core machine.
MAX_LATENTS_AGE_S = 5.0


class Harness:
    """Publishes camera frames and joint states; records what comes back."""

    def __init__(self, sim_time_start_s: float | None = None, namespace: str = "", initial_position: float = 0.1):
        self.node = rclpy.create_node("video2act_test_harness", namespace=namespace)
        # With a sim time start, this harness is the simulator: it publishes
        # /clock and stamps everything in sim time.
        self.sim_time_start_s = sim_time_start_s
        self.wall_start_ns = time.time_ns()
        self.clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.image_pub = self.node.create_publisher(Image, PARAMS.image_topic, qos_profile_sensor_data)
        self.joint_pub = self.node.create_publisher(JointState, PARAMS.joint_states_topic, 10)
        self.reset_pub = self.node.create_publisher(Empty, PARAMS.reset_topic, 10)
        self.latents, self.trajectories, self.chunks = [], [], []
        # Every command the policy published, for the envelope check: chunks
        # are not cleared with the rest. Node times (ns) after which a command
        # may start afresh from the measured state (start-up, resets, arming).
        self.all_chunks = []
        self.received_s = {}  # id(chunk) -> monotonic receipt time
        self.fresh_start_ns = []
        self.sent_image_stamps = []
        self.sent_states = []
        self.node.create_subscription(SpatioMotionLatents, PARAMS.latents_topic, self.latents.append, latents_qos())
        # The controllers as config/robots/so101_controllers.yaml sets them up,
        # each on its own topic.
        initial = np.full(len(JOINTS), initial_position)
        self.controllers = {
            f"{name}/joint_trajectory": Jtc(
                spec["joints"], initial[[JOINTS.index(j) for j in spec["joints"]]], **spec["validation"]
            )
            for name, spec in CONTROLLERS.items()
        }
        self.gripper_trajectories = []
        # Deep queues: a harness starved by the nodes beside it on a loaded
        # machine must still see every command, or the judges lose the thread.
        for topic in self.controllers:
            self.node.create_subscription(
                JointTrajectory, topic, lambda msg, info, topic=topic: self.on_trajectory(msg, info, topic), 1000
            )
        self.node.create_subscription(ActionChunk, PARAMS.action_chunk_topic, self.on_chunk, 1000)
        self.chunk_sequence_numbers = []
        self.frame_index = 0
        self.arm_client = None

    def on_trajectory(self, msg, info, topic):
        (self.trajectories if topic == "arm_controller/joint_trajectory" else self.gripper_trajectories).append(msg)
        # The controller gets it when it arrives, not when this (maybe starved)
        # harness gets to it: the middleware's receipt time, on our clock.
        self.controllers[topic].receive(msg, self.on_our_clock(info["received_timestamp"]))

    def followed_position(self) -> np.ndarray:
        """Where an arm that follows its controllers is now: at their setpoints."""
        now = self.now().nanoseconds * 1e-9
        positions = np.empty(len(JOINTS))
        for controller in self.controllers.values():
            positions[[JOINTS.index(j) for j in controller.joints]] = controller.position(now)
        return positions

    def rejections(self) -> list[str]:
        """What the controllers refused, by JTC's rules."""
        return [problem for controller in self.controllers.values() for problem in controller.rejections]

    def on_chunk(self, msg, info):
        self.chunk_sequence_numbers.append(info["publication_sequence_number"])
        self.received_s[id(msg)] = time.monotonic()
        self.chunks.append(msg)
        self.all_chunks.append(msg)

    def now(self):
        if self.sim_time_start_s is None:
            return self.node.get_clock().now()
        return Time(nanoseconds=int(self.on_our_clock(time.time_ns()) * 1e9))

    def on_our_clock(self, system_time_ns: int) -> float:
        """A system time (the middleware's stamps) in seconds of this
        harness's clock: one fixed mapping, never two clocks read apart
        (a preemption between the reads would move receipt times back)."""
        if self.sim_time_start_s is None:
            return system_time_ns * 1e-9
        return self.sim_time_start_s + (system_time_ns - self.wall_start_ns) * 1e-9

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

    def send_joint_state(self, names=JOINTS, position=None, stamp_offset_s=0.0):
        """`position`: one value for every joint, or a list; None: where the
        controllers' setpoints are (an arm that follows)."""
        setpoint = self.followed_position()
        if position is None:
            position = setpoint
        positions = list(position) if isinstance(position, (list, tuple, np.ndarray)) else [position] * len(names)
        msg = JointState(name=list(names), position=[float(p) for p in positions])
        msg.header.stamp = Time(nanoseconds=self.now().nanoseconds + int(stamp_offset_s * 1e9)).to_msg()
        self.joint_pub.publish(msg)
        # (stamp s, measured, the controllers' setpoint then): what a watchdog compares.
        self.sent_states.append((stamp_to_ns(msg.header.stamp) * 1e-9, np.asarray(positions, float), setpoint))

    def call_arm(self, armed: bool, timeout_s: float = 10.0):
        """The policy's ~/arm service; returns its response. Arming and
        disarming may start the next command afresh."""
        from std_srvs.srv import SetBool

        if self.arm_client is None:
            self.arm_client = self.node.create_client(SetBool, "video2act_policy/arm")
        assert self.arm_client.wait_for_service(timeout_sec=timeout_s)
        self.fresh_start_ns.append(self.now().nanoseconds)
        future = self.arm_client.call_async(SetBool.Request(data=armed))
        end = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.05)
        assert future.done(), "~/arm did not answer"
        return future.result()

    def send_reset(self) -> int:
        """Start a new episode; returns the reset time in ns."""
        self.fresh_start_ns.append(self.now().nanoseconds)
        self.reset_pub.publish(Empty())
        return self.now().nanoseconds

    def run(
        self,
        seconds,
        image_encoding="rgb8",
        joint_names=JOINTS,
        joint_position=None,
        images=True,
        joint_states=True,
        stamp_offset_s=0.0,
    ):
        """Camera at 15 Hz and joint states at 50 Hz for `seconds`; the arm
        follows its controllers unless `joint_position` holds it still."""
        end = time.monotonic() + seconds
        next_image = next_joint = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if self.sim_time_start_s is not None:
                self.clock_pub.publish(Clock(clock=self.now().to_msg()))
            if images and now >= next_image:
                self.send_image(image_encoding)
                next_image += 1 / 15
            if joint_states and now >= next_joint:
                self.send_joint_state(joint_names, joint_position, stamp_offset_s)
                next_joint += 1 / 50
            rclpy.spin_once(self.node, timeout_sec=0.005)

    def clear(self):
        self.latents.clear(), self.trajectories.clear(), self.chunks.clear(), self.sent_states.clear()


def command_of(chunk) -> JointCommand:
    """The command an ActionChunk reports, as the envelope made it."""
    positions = np.asarray(chunk.positions).reshape(chunk.horizon, -1)
    return JointCommand(
        stamp_to_ns(chunk.header.stamp) * 1e-9,
        np.asarray(chunk.times_from_start),
        positions,
        np.asarray(chunk.velocities).reshape(positions.shape),
        chunk.limited_values,
        chunk.horizon == 1,
        np.asarray(chunk.command_origin),
        stamp_to_ns(chunk.command_stamp) * 1e-9,
    )


def commands_inside_envelope(chunks, fresh_start_ns, limits=LIMITS) -> int:
    """Replays every command reported on action_chunk through the tests'
    joint_trajectory_controller (test/jtc.py) and checks each against the
    envelope from the setpoint it starts from. A command may start afresh
    (from the measured state, not the command in force) only first, as the
    first command after a reset or an arming call of the harness (however
    long fresh inputs took to arrive; resets made within 0.5 s before the
    harness noted them count too), or as the watchdog's stop of an arm
    that does not follow. Returns how many."""
    reported = sorted((c for c in chunks if c.horizon), key=lambda c: stamp_to_ns(c.command_stamp))
    controller = None
    previous_issued_ns = -np.inf
    for chunk in reported:
        command = command_of(chunk)
        issued_ns = command.issued_s * 1e9
        # 1e-5 rad: stamps cross as ns, the node computes in float seconds (0.24 us
        # at today's epoch, a few 1e-7 rad at these speeds); a fresh start differs by far more.
        if controller is not None and not np.allclose(command.origin, controller.position(command.issued_s), atol=1e-5):
            fresh = any(previous_issued_ns < start + 5e8 and start - 5e8 <= issued_ns for start in fresh_start_ns)
            assert fresh or chunk.reason.startswith(NOT_FOLLOWING_HINT), (
                "a command left the setpoint in force",
                command.origin,
                controller.position(command.issued_s),
            )
            controller = None  # a fresh start: the controller starts over from the measured state
        previous_issued_ns = issued_ns
        # Stamps travel as ns and the node computes in float seconds (0.24 us
        # resolution at today's epoch): 1e-4 relative covers the round trip.
        problems = envelope_violations(command, command.origin, limits, tolerance=1e-4)
        assert not problems, (problems, command)
        if controller is None:
            controller = Jtc(JOINTS, command.origin)
        message = JointTrajectory(joint_names=JOINTS, header=chunk.header)
        message.points = [
            JointTrajectoryPoint(
                positions=p.tolist(),
                velocities=v.tolist(),
                time_from_start=Duration(sec=int(t), nanosec=round((t % 1) * 1e9)),
            )
            for p, v, t in zip(command.positions, command.velocities, command.times_s)
        ]
        assert controller.receive(message, command.issued_s) == ""
    return len(reported)


def run_stack(checkpoint, logs, sim_time_start_s=None, namespace="", **overrides):
    overrides = {
        "checkpoint_path": str(checkpoint),
        "device": "cpu",
        "max_latents_age_s": MAX_LATENTS_AGE_S,
        "use_sim_time": sim_time_start_s is not None,
        "start_armed": True,
        **overrides,
    }
    files = [open(logs / f"{exe.name}.log", "w") for exe in (PERCEPTION, POLICY)]
    processes = [
        start_node(exe, PARAMS_FILES, overrides, log, namespace) for exe, log in zip((PERCEPTION, POLICY), files)
    ]
    harness = None
    try:
        rclpy.init()
        harness = Harness(sim_time_start_s, namespace)
        yield harness, processes, logs
    finally:
        # Whatever failed, the nodes stop and rclpy is shut down: a stack left
        # running would talk into every later test's graph.
        codes = stop_nodes(processes)
        if harness is not None:
            harness.node.destroy_node()
        rclpy.try_shutdown()
        for f in files:
            f.close()
    numbers = harness.chunk_sequence_numbers
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "the harness lost action chunks"
    checked = commands_inside_envelope(harness.all_chunks, harness.fresh_start_ns)
    print(f"commands checked against the safety envelope: {checked}")
    # Every trajectory the policy sent passes JTC's acceptance rules, for the arm's and the gripper's controller.
    assert not harness.rejections(), (len(harness.rejections()), harness.rejections()[:5])
    accepted = {topic: controller.accepted for topic, controller in harness.controllers.items()}
    print(f"trajectories the controllers accepted: {accepted}")
    logs_text = [p.read_text() for p in logs.iterdir()]
    assert codes == [0, 0], (codes, [text[-3000:] for text in logs_text])
    # A model call that raised (logged as "System 1 failed: ...") is a bug even when the loop goes on.
    problems = [line for text in logs_text for line in text.splitlines() if "Traceback" in line or " failed: " in line]
    assert not problems, problems


def wait_ready(harness, processes, logs, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not (harness.latents and harness.trajectories):
        harness.run(0.5)
        assert all(p.poll() is None for p in processes), [p.read_text()[-2000:] for p in logs.iterdir()]
    assert harness.latents and harness.trajectories, [p.read_text()[-2000:] for p in logs.iterdir()]
