"""video2act_policy: latest latents + joint state -> JointTrajectory chunks
for the arm's controller (and the gripper's, when it has its own).

A thin shell over video2act_core.control.PolicySupervisor: every command it
publishes comes out of the safety envelope. On a robot it starts disarmed;
`~/arm` (std_srvs/SetBool) arms it once the limits are known and the inputs
fresh, and disarms it with a hold. The limits are the params file's and the
URDF's on `robot_description`, the tighter of the two.
"""

from __future__ import annotations

from video2act_core.process import guard_process_start

# First, before the imports below load torch for seconds: the process dies
# with its launcher, and a Ctrl-C meanwhile ends it at once.
guard_process_start()

import math
import re
import sys
import threading
import time

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration as RclpyDuration
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Empty, Float64MultiArray, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from video2act_core.bringup import POLICY
from video2act_core.checkpoint import load_system1
from video2act_core.clock_offset import ClockOffsets, age_at_arrival
from video2act_core.control import (
    JointCommand,
    JointGroups,
    JointLimits,
    JointStateSample,
    Mode,
    Step,
    build_supervisor,
)
from video2act_core.data.joint_names import JointStateError, reorder_joint_state
from video2act_core.devices import limit_cpu_threads
from video2act_core.messages import latents_from_message, ns_to_stamp, stamp_to_ns
from video2act_core.metrics import RecentStats
from video2act_core.params import PolicyParams
from video2act_core.ros import ModelNode, declare_params, latched_qos, latents_qos, resolve_resource, run_node
from video2act_msgs.msg import ActionChunk, SpatioMotionLatents

_DIAGNOSTIC_LEVEL = {
    Mode.ACTIVE: DiagnosticStatus.OK,
    Mode.HOLD: DiagnosticStatus.WARN,
    Mode.DISARMED: DiagnosticStatus.WARN,
    Mode.REJECTED: DiagnosticStatus.ERROR,
}


def duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))


class PolicyNode(ModelNode):
    def __init__(self):
        super().__init__(POLICY.node)
        self.params = params = declare_params(self, PolicyParams)
        checkpoint = resolve_resource(params.checkpoint_path)
        limit_cpu_threads(params.torch_threads)
        system1 = load_system1(checkpoint, params.device, params.dtype, params.seed, warn=self.get_logger().warning)
        if list(params.joint_names) != system1.joint_names:
            raise ValueError(
                f"joint_names {params.joint_names} differ from the joints the checkpoint was trained on "
                f"{system1.joint_names}"
            )
        self.file_limits = JointLimits.from_lists(
            params.joint_names, params.joint_lower_limits, params.joint_upper_limits, params.max_joint_velocity
        )
        self.supervisor = build_supervisor(system1, params, self.file_limits, params.start_armed)
        # The model thread ticks while the executor takes messages and service calls.
        self.lock = threading.Lock()
        self.groups = JointGroups.split(list(params.joint_names), list(params.gripper_joint_names))
        self.latest_latents = None
        self.latest_state: JointStateSample | None = None
        self.last_step: Step | None = None
        self.reset_ns = 0
        self.stats = RecentStats()
        self.rejected_inputs = 0
        self.clocks = ClockOffsets()
        self.refusals_logged: dict[str, float] = {}  # kind of problem -> when last logged (monotonic s)

        self.create_subscription(SpatioMotionLatents, params.latents_topic, self.on_latents, latents_qos())
        # Best effort matches both reliable and best-effort joint state publishers.
        self.create_subscription(JointState, params.joint_states_topic, self.on_joint_state, qos_profile_sensor_data)
        self.create_subscription(Empty, params.reset_topic, self.on_reset, 10)
        if params.robot_description_topic:
            # robot_state_publisher latches the URDF: transient local, reliable.
            latched = latched_qos()
            self.create_subscription(String, params.robot_description_topic, self.on_robot_description, latched)
        if params.instruction:
            self.supervisor.planner.instruction = params.instruction
        if system1.needs_instruction:
            latched_instruction = latched_qos()
            self.create_subscription(String, params.instruction_topic, self.on_instruction, latched_instruction)
        # Reliable, depth 1: the controller wants the newest chunk, and all of it.
        reliable = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.trajectory_publisher = self.create_publisher(JointTrajectory, params.trajectory_topic, reliable)
        self.gripper_publisher = None
        if self.groups.gripper:
            gripper_type = JointTrajectory if params.gripper_command_type == "joint_trajectory" else Float64MultiArray
            self.gripper_publisher = self.create_publisher(gripper_type, params.gripper_command_topic, reliable)
        # A record of every command: a recorder or monitor that falls a few
        # seconds behind (a loaded machine) still gets each one.
        self.chunk_publisher = self.create_publisher(ActionChunk, params.action_chunk_topic, 100)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetBool, "~/arm", self.on_arm)
        self.create_timer(1.0 / params.diagnostics_rate_hz, self.publish_diagnostics)
        self.start_model_thread(1.0 / params.rate_hz, self.plan_and_publish, "System 1")
        missing = self.file_limits.missing()
        self.get_logger().info(
            f"System 1 '{system1.model_id}' from {checkpoint}: {params.latents_topic} + {params.joint_states_topic} "
            f"-> {params.trajectory_topic} at {params.rate_hz} Hz; "
            + ("arms by itself (start_armed)" if params.start_armed else "disarmed until ~/arm")
            + (f"; until the URDF says more: {missing}" if missing else "")
        )

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def refuse_input(self, what: str, problem: str) -> None:
        """Counted always, logged at most every 5 s per kind of problem: a
        flood of one kind must not hide the first of another."""
        self.rejected_inputs += 1
        kind = re.sub(r"-?\d[\d.e+-]*", "#", f"{what}: {problem}")  # numbers aside
        now = time.monotonic()
        if now - self.refusals_logged.get(kind, -math.inf) >= 5.0:
            self.refusals_logged[kind] = now
            self.get_logger().error(f"ignoring {what}: {problem}")

    def on_latents(self, msg: SpatioMotionLatents) -> None:
        try:
            latents = latents_from_message(msg)
        except ValueError as error:
            return self.refuse_input("malformed latents", str(error))
        now = self.now_s()
        self.clocks.record(self.params.latents_topic, now, latents.stamp_ns * 1e-9)
        lead = latents.stamp_ns * 1e-9 - now
        if lead > self.params.max_stamp_lead_s:
            return self.refuse_input("latents", f"stamped {lead:.2f} s in the future")
        # Perception may still publish a clip it began before a reset.
        if latents.stamp_ns >= self.reset_ns:
            self.latest_latents = latents

    def on_reset(self, _msg: Empty) -> None:
        with self.lock:
            self.reset_ns = self.get_clock().now().nanoseconds
            self.latest_latents = None
            # The state measured before the reset belongs to the last episode.
            self.latest_state = None
            self.supervisor.reset()

    def on_joint_state(self, msg: JointState) -> None:
        try:
            positions = reorder_joint_state(list(msg.name), list(msg.position), self.params.joint_names)
        except JointStateError as error:
            return self.refuse_input("joint state", str(error))
        now = self.now_s()
        stamp_ns = stamp_to_ns(msg.header.stamp)
        if stamp_ns:
            self.clocks.record(self.params.joint_states_topic, now, stamp_ns * 1e-9)
        if stamp_ns * 1e-9 - now > self.params.max_stamp_lead_s:
            return self.refuse_input("joint state", f"stamped {stamp_ns * 1e-9 - now:.2f} s in the future")
        if stamp_ns and stamp_ns <= self.reset_ns:
            return  # measured before (or at) the last reset: the last episode's
        self.latest_state = JointStateSample(positions, stamp_ns * 1e-9 if stamp_ns else now, now)

    def on_instruction(self, msg: String) -> None:
        text = msg.data.strip()
        if not text:
            return self.refuse_input("task instruction", "empty")
        with self.lock:
            changed = text != self.supervisor.planner.instruction
            self.supervisor.planner.instruction = text
        if changed:
            known = self.supervisor.planner.system1.trained_instructions
            self.get_logger().info(
                f"task instruction: '{text}'" + ("" if text in known else f" (not one it was trained on: {known[:5]})")
            )

    def on_robot_description(self, msg: String) -> None:
        try:
            urdf = JointLimits.from_urdf(msg.data, list(self.params.joint_names))
            limits = self.file_limits.tighter(urdf)
        except ValueError as error:
            self.get_logger().error(f"ignoring robot_description: {error}")
            return
        with self.lock:
            self.supervisor.set_limits(limits)
        self.get_logger().info(
            f"joint limits from the URDF and the params file: lower {limits.lower.tolist()}, "
            f"upper {limits.upper.tolist()}, velocity {limits.max_velocity.tolist()}"
        )

    def on_arm(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self.lock:
            if request.data:
                problem = self.supervisor.arm(self.latest_latents, self.latest_state, self.now_s())
                response.success, response.message = not problem, problem or "armed"
            else:
                response.success, response.message = True, "disarmed: holding at the last setpoint"
                self.publish_step(Step(Mode.DISARMED, response.message, self.supervisor.disarm(self.now_s()), None))
        self.get_logger().warning(f"~/arm {request.data}: {response.message}")
        return response

    def on_stop(self) -> None:
        # The last command of a stopping policy is a hold at its setpoint.
        with self.lock:
            self.publish_step(Step(Mode.DISARMED, "stopping", self.supervisor.disarm(self.now_s()), None))
        # The process exits right after: let the controllers have the hold first.
        for publisher in (self.trajectory_publisher, self.gripper_publisher, self.chunk_publisher):
            if publisher is not None:
                publisher.wait_for_all_acked(RclpyDuration(seconds=0.5))

    def plan_and_publish(self) -> None:
        with self.lock:
            step = self.supervisor.tick(
                self.latest_latents, self.latest_state, self.now_s(), lambda _plan: self.now_s()
            )
            self.publish_step(step)
        if step.command is not None and step.command.limited:
            self.get_logger().warning(
                f"safety envelope limited {step.command.limited} values of a chunk", throttle_duration_sec=5.0
            )
        if self.last_step is None or step.mode != self.last_step.mode:
            # One severity per call site: rclpy refuses a call site whose severity changes.
            message = f"mode {step.mode.name}" + (f": {step.reason}" if step.reason else "")
            if step.mode == Mode.ACTIVE:
                self.get_logger().info(message)
            else:
                self.get_logger().warning(message)
        self.last_step = step
        if step.plan is not None and step.mode == Mode.ACTIVE:
            self.stats.record(inference=step.plan.inference_s, latents_age=step.plan.latents_age_s)

    def publish_step(self, step: Step) -> None:
        """The step's command to the controllers, if any, and what was done on action_chunk."""
        if step.command is not None:
            self.publish_command(step.command)
        self.publish_chunk(step, self.latest_state, self.now_s())

    def publish_command(self, command: JointCommand) -> None:
        self.trajectory_publisher.publish(self.trajectory(command, self.groups.arm))
        if self.gripper_publisher is None:
            return
        if self.params.gripper_command_type == "joint_trajectory":
            self.gripper_publisher.publish(self.trajectory(command, self.groups.gripper))
        else:
            # A forward command controller takes one position: the next point's.
            self.gripper_publisher.publish(
                Float64MultiArray(data=command.positions[0, list(self.groups.gripper)].tolist())
            )

    def trajectory(self, command: JointCommand, columns: tuple[int, ...]) -> JointTrajectory:
        # The simulator also refuses a chunk stamped before its last reset.
        msg = JointTrajectory(joint_names=[self.params.joint_names[i] for i in columns])
        stamp_s, times = command.as_sent()
        ns_to_stamp(round(stamp_s * 1e9), msg.header.stamp)
        cols = list(columns)
        msg.points = [
            JointTrajectoryPoint(
                positions=positions[cols].tolist(),
                velocities=velocities[cols].tolist(),
                time_from_start=duration(offset),
            )
            for positions, velocities, offset in zip(command.positions, command.velocities, times)
        ]
        return msg

    def publish_chunk(self, step: Step, state: JointStateSample | None, now: float) -> None:
        msg = ActionChunk()
        stamp = step.command.stamp_s if step.command is not None else state.stamp_s if state is not None else now
        ns_to_stamp(round(stamp * 1e9), msg.header.stamp)
        msg.mode = int(step.mode)
        msg.reason = step.reason
        msg.joint_names = list(self.params.joint_names)
        msg.control_period = self.params.action_period_s
        if step.command is not None:
            msg.times_from_start = step.command.times_s.tolist()
            msg.positions = step.command.positions.ravel().tolist()
            msg.velocities = step.command.velocities.ravel().tolist()
            msg.horizon = step.command.positions.shape[0]
            msg.limited_values = step.command.limited
            msg.command_origin = step.command.origin.tolist()
            ns_to_stamp(round(step.command.issued_s * 1e9), msg.command_stamp)
        plan = step.plan
        if plan is not None:
            if plan.latents is not None:
                ns_to_stamp(plan.latents.stamp_ns, msg.latents_stamp)
                msg.latents_sequence = plan.latents.sequence
            msg.latents_age = float(plan.latents_age_s)
            msg.inference_latency = float(plan.inference_s)
            msg.frozen_steps = plan.frozen_steps
        self.chunk_publisher.publish(msg)

    def publish_diagnostics(self) -> None:
        step, state, now = self.last_step, self.latest_state, self.now_s()
        mode = step.mode if step is not None else Mode.DISARMED
        # An arm that does not follow needs a person, not patience.
        level = DiagnosticStatus.ERROR if self.supervisor.fault else _DIAGNOSTIC_LEVEL[mode]
        message = mode.name + (f": {step.reason}" if step is not None and step.reason else "")
        clocks = [
            self.clocks.problem(
                self.params.joint_states_topic, self.params.max_stamp_lead_s, self.params.max_joint_state_age_s
            ),
            self.clocks.problem(self.params.latents_topic, self.params.max_stamp_lead_s, self.params.max_latents_age_s),
        ]
        if any(clocks):
            level = max(level, DiagnosticStatus.WARN)
            message += "; " + "; ".join(problem for problem in clocks if problem)
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: System 1",
            hardware_id=self.params.checkpoint_path,
            message=message,
        )
        inference_p50, inference_p99 = self.stats.percentiles_ms("inference")
        age_p50, _ = self.stats.percentiles_ms("latents_age")
        values = {
            "armed": self.supervisor.armed,
            "active chunks per s": f"{self.stats.rate_hz():.2f} (configured {self.params.rate_hz} Hz)",
            "inference p50 / p99 ms": f"{inference_p50:.1f} / {inference_p99:.1f}",
            "latents age p50 ms": f"{age_p50:.0f}",
            "joint state age s": f"{state.age_s(now):.3f}" if state is not None else "none",
            "inputs refused": self.rejected_inputs,
            "limits missing": self.supervisor.envelope.limits.missing() or "none",
            "execution strategy": self.params.execution_strategy,
        }
        if self.supervisor.planner.system1.needs_instruction:
            values["task instruction"] = self.supervisor.planner.instruction or "none"
        values.update(age_at_arrival(self.clocks))
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_publisher.publish(array)


def main(args=None) -> int:
    return run_node(PolicyNode, POLICY.node, args)


if __name__ == "__main__":
    sys.exit(main())
