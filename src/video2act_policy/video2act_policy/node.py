"""video2act_policy: latest latents + joint state -> JointTrajectory chunks."""

from __future__ import annotations

import sys

import numpy as np
from builtin_interfaces.msg import Duration
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from video2act_msgs.msg import ActionChunk, SpatioMotionLatents

from video2act_core.checkpoint import load_system1
from video2act_core.control import ChunkPlanner, JointStateError, JointStateSample, Mode, SafetyLimits, reorder_joint_state
from video2act_core.messages import latents_from_message, ns_to_stamp, stamp_to_seconds
from video2act_core.params import PolicyParams
from video2act_core.policy import limit_cpu_threads
from video2act_core.ros import ModelNode, declare_params, latents_qos, resolve_resource, run_node


def duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))


class PolicyNode(ModelNode):
    def __init__(self):
        super().__init__("video2act_policy")
        self.params = params = declare_params(self, PolicyParams)
        checkpoint = resolve_resource(params.checkpoint_path)
        limit_cpu_threads(params.torch_threads)
        system1 = load_system1(checkpoint, params.device, params.dtype, params.seed)
        if list(params.joint_names) != system1.joint_names:
            raise ValueError(
                f"joint_names {params.joint_names} differ from the joints the checkpoint was trained on "
                f"{system1.joint_names}"
            )
        limits = SafetyLimits.from_lists(
            len(params.joint_names), params.joint_lower_limits, params.joint_upper_limits, params.max_joint_velocity
        )
        self.planner = ChunkPlanner(
            system1, limits, params.action_period_s, params.max_latents_age_s, params.max_joint_state_age_s,
            params.num_inference_steps,
        )
        self.latest_latents = None
        self.latest_state: JointStateSample | None = None
        self.last_mode: Mode | None = None
        self.reset_ns = 0

        self.create_subscription(SpatioMotionLatents, params.latents_topic, self.on_latents, latents_qos())
        # Best effort matches both reliable and best-effort joint state publishers.
        self.create_subscription(JointState, params.joint_states_topic, self.on_joint_state, qos_profile_sensor_data)
        self.create_subscription(Empty, params.reset_topic, self.on_reset, 10)
        reliable = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.trajectory_publisher = self.create_publisher(JointTrajectory, params.trajectory_topic, reliable)
        self.chunk_publisher = self.create_publisher(ActionChunk, params.action_chunk_topic, 10)
        self.start_model_thread(1.0 / params.rate_hz, self.plan_and_publish, "System 1")
        self.get_logger().info(
            f"System 1 '{system1.model_id}' from {checkpoint}: {params.latents_topic} + {params.joint_states_topic} "
            f"-> {params.trajectory_topic} at {params.rate_hz} Hz"
        )

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_latents(self, msg: SpatioMotionLatents) -> None:
        try:
            latents = latents_from_message(msg)
        except ValueError as error:
            self.get_logger().error(f"dropping malformed latents: {error}", throttle_duration_sec=5.0)
            return
        # Perception may still publish a clip it began before a reset.
        if latents.stamp_ns >= self.reset_ns:
            self.latest_latents = latents

    def on_reset(self, _msg: Empty) -> None:
        self.reset_ns = self.get_clock().now().nanoseconds
        self.latest_latents = None

    def on_joint_state(self, msg: JointState) -> None:
        try:
            positions = reorder_joint_state(list(msg.name), list(msg.position), self.params.joint_names)
        except JointStateError as error:
            self.get_logger().error(f"ignoring joint state: {error}", throttle_duration_sec=5.0)
            return
        stamp = stamp_to_seconds(msg.header.stamp)
        self.latest_state = JointStateSample(positions, stamp if stamp > 0 else self.now_s())

    def plan_and_publish(self) -> None:
        now = self.now_s()
        state = self.latest_state
        plan = self.planner.plan(self.latest_latents, state, now)
        if plan.mode == Mode.ACTIVE:
            self.publish_trajectory(plan.positions)
        elif self.last_mode == Mode.ACTIVE and state is not None:
            # Stop the arm where it is instead of letting it finish a chunk
            # sampled from inputs we no longer trust.
            self.publish_trajectory(state.positions[None])
        if plan.mode != self.last_mode:
            log = self.get_logger().info if plan.mode == Mode.ACTIVE else self.get_logger().warn
            log(f"mode {plan.mode.name}" + (f": {plan.reason}" if plan.reason else ""))
            self.last_mode = plan.mode
        self.publish_chunk(plan, state, now)

    def publish_trajectory(self, positions: np.ndarray) -> None:
        msg = JointTrajectory()
        # A zero stamp tells the controller to start the trajectory on receipt.
        msg.joint_names = list(self.params.joint_names)
        period = self.params.action_period_s
        msg.points = [
            JointTrajectoryPoint(positions=row.tolist(), time_from_start=duration((i + 1) * period))
            for i, row in enumerate(positions)
        ]
        self.trajectory_publisher.publish(msg)

    def publish_chunk(self, plan, state: JointStateSample | None, now: float) -> None:
        msg = ActionChunk()
        ns_to_stamp(round((state.stamp_s if state is not None else now) * 1e9), msg.header.stamp)
        msg.mode = int(plan.mode)
        msg.reason = plan.reason
        msg.joint_names = list(self.params.joint_names)
        msg.control_period = self.params.action_period_s
        if plan.positions is not None:
            msg.positions = plan.positions.ravel().tolist()
            msg.horizon = plan.positions.shape[0]
        if plan.latents is not None:
            ns_to_stamp(plan.latents.stamp_ns, msg.latents_stamp)
            msg.latents_sequence = plan.latents.sequence
        msg.latents_age = float(plan.latents_age_s)
        msg.inference_latency = float(plan.inference_s)
        self.chunk_publisher.publish(msg)


def main(args=None) -> int:
    return run_node(PolicyNode, args)


if __name__ == "__main__":
    sys.exit(main())
