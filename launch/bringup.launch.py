"""Video2Act on a robot (or a Gazebo / Isaac Sim bridge): perception and
policy nodes with the shared params file.

    ros2 launch video2act bringup.launch.py [namespace:=arm1]
        [params_file:=/path/to.yaml] [use_sim_time:=true]
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    default_params = Path(get_package_share_directory("video2act")) / "config" / "video2act.yaml"
    namespace = LaunchConfiguration("namespace")
    params_file = LaunchConfiguration("params_file")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)

    def node(package: str, executable: str, name: str) -> Node:
        return Node(
            package=package,
            executable=executable,
            name=name,
            namespace=namespace,
            parameters=[params_file, {"use_sim_time": use_sim_time}],
            output="screen",
            emulate_tty=True,
        )

    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="", description="namespace for both nodes"),
            DeclareLaunchArgument("params_file", default_value=str(default_params), description="ROS 2 params file"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            node("video2act_perception", "perception_node", "video2act_perception"),
            node("video2act_policy", "policy_node", "video2act_policy"),
        ]
    )
