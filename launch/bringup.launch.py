"""Video2Act on a robot (or a Gazebo / Isaac Sim bridge): perception and
policy nodes with the shared params file.

    ros2 launch video2act bringup.launch.py [namespace:=arm1]
        [params_file:=/path/to.yaml] [overrides_file:=/path/to/bridge.yaml]
        [use_sim_time:=true]

`overrides_file` is applied on top of `params_file`, e.g. one of
config/bridges/*.yaml to point the topics at a simulator's bridge.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def video2act_nodes(context):
    value = lambda name: LaunchConfiguration(name).perform(context)
    parameters = [value("params_file")]
    if value("overrides_file"):
        parameters.append(value("overrides_file"))
    parameters.append({"use_sim_time": value("use_sim_time").lower() == "true"})
    return [
        Node(package=package, executable=executable, name=name, namespace=value("namespace"),
             parameters=parameters, output="screen", emulate_tty=True)
        for package, executable, name in (
            ("video2act_perception", "perception_node", "video2act_perception"),
            ("video2act_policy", "policy_node", "video2act_policy"),
        )
    ]


def generate_launch_description():
    share = Path(get_package_share_directory("video2act"))
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="", description="namespace for both nodes"),
            DeclareLaunchArgument("params_file", default_value=str(share / "config" / "video2act.yaml"),
                                  description="ROS 2 params file"),
            DeclareLaunchArgument("overrides_file", default_value="", description="params applied on top"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            OpaqueFunction(function=video2act_nodes),
        ]
    )
