"""video2act_sim arm node: the kinematic arm behind the topics a Gazebo
(ros_gz_bridge) or Isaac Sim bridge would offer: /joint_states, a camera
Image, a JointTrajectory controller topic, and task success."""

from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory

from video2act_core.frames import encode_rgb8
from video2act_core.messages import stamp_to_seconds
from video2act_core.params import SimArmParams
from video2act_core.ros import declare_params, run_node
from video2act_core.trajectory import Trajectory
from video2act_sim.arm import KinematicArm


class SimArmNode(Node):
    def __init__(self):
        super().__init__("video2act_sim_arm")
        self.params = params = declare_params(self, SimArmParams)
        self.arm = KinematicArm(len(params.joint_names), seed=params.seed)
        # The arm keeps ROS time so stamped trajectories start when they say.
        self.last_step_s = self.arm.time_s = self.now_s()
        reliable = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.create_subscription(JointTrajectory, params.trajectory_topic, self.on_trajectory, reliable)
        self.joint_publisher = self.create_publisher(JointState, params.joint_states_topic, 10)
        self.image_publisher = self.create_publisher(Image, params.image_topic, qos_profile_sensor_data)
        self.success_publisher = self.create_publisher(Bool, params.success_topic, 10)
        self.create_timer(1.0 / params.joint_state_rate_hz, self.on_physics)
        self.create_timer(1.0 / params.camera_rate_hz, self.on_camera)

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            order = [list(msg.joint_names).index(name) for name in self.params.joint_names]
            positions = [[point.positions[i] for i in order] for point in msg.points]
            times = [stamp_to_seconds(point.time_from_start) for point in msg.points]
            self.arm.command(Trajectory(stamp_to_seconds(msg.header.stamp), times, positions))
        except (ValueError, IndexError) as error:
            self.get_logger().error(f"rejecting trajectory: {error}", throttle_duration_sec=5.0)

    def on_physics(self) -> None:
        now = self.now_s()
        self.arm.step(max(now - self.last_step_s, 1e-4))
        self.last_step_s = now
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(self.params.joint_names)
        msg.position = self.arm.state.positions.tolist()
        msg.velocity = self.arm.state.velocities.tolist()
        self.joint_publisher.publish(msg)
        self.success_publisher.publish(Bool(data=self.arm.success()))

    def on_camera(self) -> None:
        msg = Image()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "camera_optical_frame"
        msg.encoding = "rgb8"
        msg.height, msg.width, msg.step, msg.data = encode_rgb8(
            self.arm.render(self.params.image_height, self.params.image_width)
        )
        self.image_publisher.publish(msg)


def main(args=None) -> int:
    return run_node(SimArmNode, args)


if __name__ == "__main__":
    sys.exit(main())
