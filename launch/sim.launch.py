"""The simulated arm closed-loop with both Video2Act nodes on sim time.

    ros2 launch video2act sim.launch.py [params_file:=/path/to.yaml]

The simulator publishes /clock; perception and policy follow it. Without a
ROS install the same loop runs with `python -m video2act_sim.demo --sim-time`.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    params_file = LaunchConfiguration("params_file")
    default = Path(get_package_share_directory("video2act")) / "config" / "video2act.yaml"
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=str(default), description="ROS 2 params file"),
            Node(package="video2act_sim", executable="sim_arm_node", name="video2act_sim_arm",
                 parameters=[params_file, {"publish_clock": True}], output="screen"),
            Node(package="video2act_perception", executable="perception_node", name="video2act_perception",
                 parameters=[params_file, {"use_sim_time": True}], output="screen"),
            Node(package="video2act_policy", executable="policy_node", name="video2act_policy",
                 parameters=[params_file, {"use_sim_time": True}], output="screen"),
        ]
    )
