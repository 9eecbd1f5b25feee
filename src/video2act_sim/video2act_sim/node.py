"""video2act_sim arm node: the kinematic arm behind the topics a Gazebo
(ros_gz_bridge) or Isaac Sim bridge would offer: /joint_states, a camera
Image with its CameraInfo, /clock, a JointTrajectory controller topic, and
one task-success outcome per episode.

Episodes are scoped: a reset is published at each episode start, and a
trajectory stamped at or before it (planned from the last episode's state)
is refused, so nothing planned in one episode moves the arm in the next
(the policy's stops come stamped zero, "on receipt", and the policy sends
none of an episode it has reset). The arm moves within its hardware
limits; each episode's report (`video2act/episode_report`,
diagnostic_msgs/DiagnosticStatus) counts what it refused and could not
follow."""

from __future__ import annotations

from video2act_core.process import guard_process_start

# First, before the imports below load torch for seconds: the process dies
# with its launcher, and a Ctrl-C meanwhile ends it at once.
guard_process_start()

import sys
from time import monotonic

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.clock import Clock as SteadyClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Empty, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from video2act_core.bringup import SIM_ARM
from video2act_core.control import JointGroups
from video2act_core.data.images import encode_rgb8
from video2act_core.messages import stamp_to_seconds
from video2act_core.params import SimArmParams
from video2act_core.ros import declare_params, latched_qos, run_node
from video2act_core.trajectory import Trajectory, TrajectoryRejected
from video2act_sim.arm import HardwareLimits
from video2act_sim.arms import make_arm
from video2act_sim.camera import camera_effects, camera_noise_streams
from video2act_sim.episode import EPISODE_START_NS

# Sim time per wall time when the node owns /clock.
REAL_TIME = 1.0


class SimArmNode(Node):
    def __init__(self):
        super().__init__(SIM_ARM.node)
        self.params = params = declare_params(self, SimArmParams)
        if params.publish_clock and self.get_parameter("use_sim_time").value:
            raise ValueError("publish_clock and use_sim_time together: the simulator owns the clock")
        self.episode = 0
        self.hardware = HardwareLimits.from_params(params)
        self.wall_last_s = monotonic()
        self.arm = None
        self.start_episode(self.now_s() if not params.publish_clock else EPISODE_START_NS * 1e-9)
        self.camera_rngs = camera_noise_streams(params.seed, self.arm, params)
        reliable = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        # Controllers as ros2_control would run them: one for the arm's joints,
        # and one for the gripper's when the params give it its own.
        self.groups = JointGroups.split(list(params.joint_names), list(params.gripper_joint_names))
        self.create_subscription(
            JointTrajectory, params.trajectory_topic, lambda msg: self.on_trajectory(msg, self.groups.arm), reliable
        )
        if self.groups.gripper and params.gripper_command_type == "joint_trajectory":
            self.create_subscription(
                JointTrajectory,
                params.gripper_command_topic,
                lambda msg: self.on_trajectory(msg, self.groups.gripper),
                reliable,
            )
        elif self.groups.gripper:
            self.create_subscription(Float64MultiArray, params.gripper_command_topic, self.on_forward_command, reliable)
        self.joint_publisher = self.create_publisher(JointState, params.joint_states_topic, 10)
        # The video camera, then the extra cameras (a wrist camera) in order.
        self.image_publishers = [
            self.create_publisher(Image, topic, qos_profile_sensor_data)
            for topic in (params.image_topic, *params.extra_camera_topics)
        ]
        self.info_publisher = self.create_publisher(CameraInfo, params.camera_info_topic, qos_profile_sensor_data)
        self.success_publisher = self.create_publisher(Bool, params.success_topic, 10)
        self.report_publisher = self.create_publisher(DiagnosticStatus, "video2act/episode_report", 10)
        self.reset_publisher = self.create_publisher(Empty, params.reset_topic, 10)
        self.clock_publisher = self.create_publisher(Clock, "/clock", 10) if params.publish_clock else None
        # The task, latched as an operator's `ros2 topic pub` of it would be.
        latched = latched_qos()
        self.create_publisher(String, params.instruction_topic, latched).publish(String(data=params.task_instruction))
        # Timers on the steady clock: the simulation must keep stepping when
        # it is the one that drives /clock.
        steady = SteadyClock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / params.joint_state_rate_hz, self.on_physics, clock=steady)
        self.create_timer(1.0 / params.camera_rate_hz, self.on_camera, clock=steady)
        self.publish_camera_pose()

    def publish_camera_pose(self) -> None:
        """The camera on /tf_static, as a robot's robot_state_publisher puts
        it, where tf2_ros is installed (not in the PyPI wheels)."""
        try:
            from geometry_msgs.msg import TransformStamped
            from tf2_ros import StaticTransformBroadcaster
        except ImportError:
            return
        pose = self.arm.camera_pose(self.params.base_frame, self.params.camera_frame)
        msg = TransformStamped(child_frame_id=pose.child)
        msg.header.stamp, msg.header.frame_id = self.stamp(), pose.parent
        t, q = msg.transform.translation, msg.transform.rotation
        t.x, t.y, t.z = pose.translation
        q.x, q.y, q.z, q.w = pose.rotation
        self.tf_static_broadcaster = StaticTransformBroadcaster(self)
        self.tf_static_broadcaster.sendTransform(msg)

    def now_s(self) -> float:
        """Simulation time: the node clock, or the arm's own when it owns /clock."""
        return self.arm.time_s if self.params.publish_clock else self.get_clock().now().nanoseconds * 1e-9

    def stamp(self):
        return Time(nanoseconds=int(round(self.now_s() * 1e9))).to_msg()

    def start_episode(self, time_s: float) -> None:
        if self.arm is not None:
            self.arm.close()  # a MuJoCo arm's renderer holds a GL context
        self.arm = make_arm(
            self.params.backend,
            len(self.params.joint_names),
            self.params.seed + self.episode,
            self.hardware,
            self.params.task,
            self.params.scene,
        )
        self.arm.time_s = self.episode_start_s = time_s
        self.succeeded_at_s = None
        self.counts = {"commands": 0, "refused_from_last_episode": 0, "refused_all_points_past": 0}

    def on_trajectory(self, msg: JointTrajectory, joints: tuple[int, ...]) -> None:
        """Accepted only when it names exactly the controller's joints, as a
        joint_trajectory_controller without partial goals does."""
        names = [self.params.joint_names[i] for i in joints]
        if sorted(msg.joint_names) != sorted(names):
            self.get_logger().error(
                f"rejecting trajectory for joints {list(msg.joint_names)}: this controller owns {names}",
                throttle_duration_sec=5.0,
            )
            return
        stamp = stamp_to_seconds(msg.header.stamp)
        if 0 < stamp <= self.episode_start_s:
            self.counts["refused_from_last_episode"] += 1
            return
        try:
            order = [list(msg.joint_names).index(name) for name in names]
            positions = [[point.positions[i] for i in order] for point in msg.points]
            velocities = (
                [[point.velocities[i] for i in order] for point in msg.points]
                if all(len(point.velocities) for point in msg.points)
                else None
            )
            times = [stamp_to_seconds(point.time_from_start) for point in msg.points]
            self.arm.command(Trajectory(stamp, times, positions, velocities), joints)
            self.counts["commands"] += 1
        except TrajectoryRejected as error:
            self.counts["refused_all_points_past"] += "in the past" in str(error)
            self.get_logger().error(f"rejecting trajectory: {error}", throttle_duration_sec=5.0)
        except (ValueError, IndexError) as error:
            self.get_logger().error(f"rejecting trajectory: {error}", throttle_duration_sec=5.0)

    def on_forward_command(self, msg: Float64MultiArray) -> None:
        """A forward command controller: the position applies at once."""
        if len(msg.data) != len(self.groups.gripper):
            self.get_logger().error(
                f"rejecting gripper command of {len(msg.data)} values for {len(self.groups.gripper)} joints",
                throttle_duration_sec=5.0,
            )
            return
        try:
            self.arm.command(Trajectory(0.0, [1e-3], [list(msg.data)]), self.groups.gripper)
        except ValueError as error:
            self.get_logger().error(f"rejecting gripper command: {error}", throttle_duration_sec=5.0)

    def on_physics(self) -> None:
        wall = monotonic()
        elapsed = (wall - self.wall_last_s) * REAL_TIME if self.params.publish_clock else self.now_s() - self.arm.time_s
        self.wall_last_s = wall
        # A late timer (a loaded machine) catches up in steps of at most one
        # period, and an episode ends at the step that reaches its limit.
        period = 1.0 / self.params.joint_state_rate_hz
        while True:
            step = min(max(elapsed, 1e-4), period)
            self.arm.step(step)
            elapsed -= step
            if self.check_episode() or elapsed <= 1e-9:
                break
        if self.clock_publisher:
            self.clock_publisher.publish(Clock(clock=self.stamp()))
        msg = JointState()
        # The time of the physics state itself: an episode starts at it, so a
        # command planned from its last state is one of that episode's.
        msg.header.stamp = Time(nanoseconds=int(round(self.arm.time_s * 1e9))).to_msg()
        msg.name = list(self.params.joint_names)
        msg.position = self.arm.state.positions.tolist()
        msg.velocity = self.arm.state.velocities.tolist()
        self.joint_publisher.publish(msg)

    def check_episode(self) -> bool:
        """End the episode once it has settled after success or reached its
        time limit: report it, start the next one, publish the reset."""
        now = self.arm.time_s
        if self.succeeded_at_s is None and self.arm.success():
            self.succeeded_at_s = now
        settled = self.succeeded_at_s is not None and now - self.succeeded_at_s >= self.params.episode_settle_s
        if settled or now - self.episode_start_s >= (self.params.episode_time_limit_s or self.arm.time_limit_s):
            success = self.succeeded_at_s is not None
            self.success_publisher.publish(Bool(data=success))
            report = {
                "seed": self.params.seed + self.episode,
                "success": success,
                "start_ns": int(round(self.episode_start_s * 1e9)),
                "duration_s": round(now - self.episode_start_s, 3),
                "final_distance": round(self.arm.distance(), 4),
                **self.counts,
                "limited_steps": self.arm.servos.limited_steps,
                "peak_speed_ratio": round(self.arm.servos.peak_speed_ratio, 3),
            }
            self.report_publisher.publish(
                DiagnosticStatus(
                    level=DiagnosticStatus.OK if success else DiagnosticStatus.WARN,
                    name=f"episode {self.episode}",
                    message="success" if success else "failure",
                    values=[KeyValue(key=key, value=str(value)) for key, value in report.items()],
                )
            )
            self.get_logger().info(f"episode {self.episode}: " + ", ".join(f"{k} {v}" for k, v in report.items()))
            self.episode += 1
            self.start_episode(now)
            self.reset_publisher.publish(Empty())
            return True
        return False

    def on_camera(self) -> None:
        stamp = self.stamp()
        for camera, (publisher, rng) in enumerate(zip(self.image_publishers, self.camera_rngs)):
            msg = Image()
            msg.header.stamp = stamp
            msg.header.frame_id = self.params.camera_frame if camera == 0 else self.arm.cameras[camera]
            msg.encoding = "rgb8"
            frame = camera_effects(
                self.arm.render(self.params.image_height, self.params.image_width, camera),
                rng,
                self.params.camera_noise_std,
                self.params.camera_flicker,
            )
            msg.height, msg.width, msg.step, msg.data = encode_rgb8(frame)
            publisher.publish(msg)
            if camera == 0:
                self.publish_camera_info(msg)

    def publish_camera_info(self, msg: Image) -> None:
        info = CameraInfo()
        info.header = msg.header
        info.height, info.width = msg.height, msg.width
        # An ideal pinhole looking straight down; the render has no distortion.
        focal = float(msg.width)
        info.k = [focal, 0.0, msg.width / 2, 0.0, focal, msg.height / 2, 0.0, 0.0, 1.0]
        info.p = [focal, 0.0, msg.width / 2, 0.0, 0.0, focal, msg.height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        self.info_publisher.publish(info)

    def destroy_node(self) -> None:
        self.arm.close()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(SimArmNode, SIM_ARM.node, args)


if __name__ == "__main__":
    sys.exit(main())
